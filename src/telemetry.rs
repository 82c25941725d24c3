//! Logs and metrics: the tracing subscriber, the Prometheus recorder, and the
//! middleware that measures every HTTP request by route template.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Latency buckets (seconds) shared by every histogram classbell records.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// For whole jobs and fan-outs, which may take minutes.
const LONG_SECONDS_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Rows per delivery-writer batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (several apps in one test process) keeps the first subscriber.
    let _ = match format {
        // The current span (with the request id) once, not the whole list again.
        LogFormat::Json => builder.json().with_span_list(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("classbell_delivery_writer_batch_size".into()),
                        BATCH_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("classbell_job_duration_seconds".into()),
                        LONG_SECONDS_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("classbell_fanout_duration_seconds".into()),
                        LONG_SECONDS_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            gauge!(
                "classbell_build_info",
                "version" => env!("CARGO_PKG_VERSION"),
                "commit" => option_env!("CLASSBELL_GIT_COMMIT").unwrap_or("unknown")
            )
            .set(1.0);
            handle
        })
        .clone()
}

/// Counts and times each request under its route template (`/api/users/{id}`),
/// never the raw path, so the label set stays bounded.
/// A request's method as a label: the ones HTTP defines, and `other` for the
/// rest, so a client that makes methods up cannot mint new series.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|known| **known == method.as_str())
        .copied()
        .unwrap_or("other")
}

/// Query parameters whose values are credentials: never logged.
const SECRET_PARAMETERS: &[&str] = &[
    "token",
    "ticket",
    "password",
    "access_token",
    "refresh_token",
    "secret",
];

/// The request's path and query with the values of credential parameters
/// (`SECRET_PARAMETERS`, any case) replaced by `REDACTED`.
pub fn redacted_target(uri: &actix_web::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if SECRET_PARAMETERS
                    .iter()
                    .any(|secret| secret.eq_ignore_ascii_case(name)) =>
            {
                format!("{name}=REDACTED")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

/// The root span of every request (what each of its log lines carries):
/// tracing-actix-web's fields, with the target's credentials redacted and
/// the method from the fixed set.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %method_label(request.method()),
            http.route = %route,
            http.target = %redacted_target(request.uri()),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            request_id = %request_id,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: tracing::Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

pub async fn record_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16().to_string();
    // The access log line; inside TracingLogger's span, so it carries the request id.
    tracing::info!(
        method = %method,
        route = %route,
        status = %status,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    counter!(
        "classbell_http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status.clone()
    )
    .increment(1);
    histogram!(
        "classbell_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .record(started.elapsed().as_secs_f64());
    Ok(response)
}

/// Returns the request's id, the one its log lines carry, as `X-Request-Id`,
/// so a user's report can be matched with the logs. Registered inside
/// `TracingLogger`, which mints the id.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .copied();
    let mut response = next.call(req).await?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    Ok(response)
}

/// The response header that carries the request id.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Actix keeps no count of an actor's mailbox, so classbell does: every
/// message sent through `tell` (or counted with `sent`) raises
/// `classbell_actor_mailbox_depth`, and the handler's `handled` lowers it.
pub mod mailbox {
    use actix::dev::ToEnvelope;
    use actix::{Actor, Addr, Handler, Message};
    use metrics::{Counter, Gauge, counter, gauge};

    /// One actor's series, looked up once, for the mailboxes that count a
    /// message per recipient (the hub's pushes to thousands of sessions):
    /// there a lookup by name per message costs more than the message.
    #[derive(Clone)]
    pub struct Mailbox {
        depth: Gauge,
        messages: Counter,
    }

    impl Mailbox {
        pub fn of(actor: &'static str) -> Self {
            Mailbox {
                depth: gauge!("classbell_actor_mailbox_depth", "actor" => actor),
                messages: counter!("classbell_actor_messages_total", "actor" => actor),
            }
        }

        pub fn sent(&self) {
            self.depth.increment(1.0);
        }

        /// Call first thing in a handler.
        pub fn handled(&self) {
            self.depth.decrement(1.0);
            self.messages.increment(1);
        }

        /// Messages that went with their mailbox, never handled.
        pub fn lost(&self, count: usize) {
            self.depth.decrement(count as f64);
        }
    }

    /// Registers an actor's series at zero.
    pub fn register(actor: &'static str) {
        gauge!("classbell_actor_mailbox_depth", "actor" => actor).set(0.0);
        counter!("classbell_actor_messages_total", "actor" => actor).absolute(0);
    }

    pub fn sent(actor: &'static str) {
        gauge!("classbell_actor_mailbox_depth", "actor" => actor).increment(1.0);
    }

    /// Work an actor did on its own (a timer tick, a stream item): counted
    /// as handled, with no mailbox to drain.
    pub fn ran(actor: &'static str) {
        counter!("classbell_actor_messages_total", "actor" => actor).increment(1);
    }

    /// Call first thing in a handler.
    pub fn handled(actor: &'static str) {
        gauge!("classbell_actor_mailbox_depth", "actor" => actor).decrement(1.0);
        counter!("classbell_actor_messages_total", "actor" => actor).increment(1);
    }

    /// `do_send`, counted.
    pub fn tell<A, M>(addr: &Addr<A>, actor: &'static str, message: M)
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        sent(actor);
        addr.do_send(message);
    }
}
