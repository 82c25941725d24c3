// @generated automatically by Diesel CLI.

diesel::table! {
    announcements (id) {
        id -> Int8,
        title -> Text,
        body -> Text,
        audience_kind -> Text,
        audience_id -> Nullable<Int8>,
        publisher_id -> Int8,
        status -> Text,
        publish_at -> Nullable<Timestamptz>,
        published_at -> Nullable<Timestamptz>,
        withdrawn_at -> Nullable<Timestamptz>,
        fanout_target -> Nullable<Int4>,
        fanout_done -> Int4,
        fanout_cursor -> Int8,
        fanout_finished_at -> Nullable<Timestamptz>,
        fanout_owner -> Nullable<Uuid>,
        fanout_lease_until -> Nullable<Timestamptz>,
        fanout_attempts -> Int4,
        fanout_retry_at -> Nullable<Timestamptz>,
        fanout_error -> Nullable<Text>,
        last_reminded_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        withdrawn_tx -> Nullable<Int8>,
        ack_due_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        escalation -> Nullable<Text>,
    }
}

diesel::table! {
    auth_sessions (id) {
        id -> Uuid,
        user_id -> Int8,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    course_attachments (id) {
        id -> Int8,
        course_id -> Int8,
        title -> Text,
        filename -> Text,
        object_key -> Text,
        size -> Int8,
        content_type -> Text,
        uploaded_by -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    courses (id) {
        id -> Int8,
        code -> Text,
        title -> Text,
        description -> Text,
        credits -> Numeric,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    delivery_counts (state, slot) {
        state -> Text,
        slot -> Int2,
        n -> Int8,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Int8,
        announcement_id -> Int8,
        user_id -> Int8,
        state -> Text,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
        ack_at -> Nullable<Timestamptz>,
        last_push_at -> Nullable<Timestamptz>,
        retry_count -> Int4,
        created_tx -> Int8,
        changed_tx -> Int8,
        retracted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    enrollments (section_id, student_id) {
        section_id -> Int8,
        student_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    escalation_steps (id) {
        id -> Int8,
        announcement_id -> Int8,
        channel -> Text,
        offset_secs -> Nullable<Int8>,
        planned_at -> Timestamptz,
        run_at -> Timestamptz,
        state -> Text,
        ran_at -> Nullable<Timestamptz>,
        reached -> Nullable<Int4>,
    }
}

diesel::table! {
    invitations_due (user_id) {
        user_id -> Int8,
        queued_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        kind -> Text,
        state -> Text,
        owner_id -> Int8,
        params -> Jsonb,
        input_key -> Nullable<Text>,
        output_key -> Nullable<Text>,
        progress_done -> Int4,
        progress_total -> Nullable<Int4>,
        result -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        attempts -> Int4,
        claimed_by -> Nullable<Uuid>,
        lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    object_deletions (object_key) {
        object_key -> Text,
        queued_at -> Timestamptz,
        attempts -> Int4,
        due_at -> Timestamptz,
    }
}

diesel::table! {
    mail_queue (id) {
        id -> Int8,
        message_id -> Text,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        message -> Bytea,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        lease_until -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    password_resets (token_hash) {
        token_hash -> Bytea,
        user_id -> Int8,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        purpose -> Text,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sections (id) {
        id -> Int8,
        course_id -> Int8,
        section_code -> Text,
        term -> Text,
        teacher_id -> Int8,
        capacity -> Int4,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        role -> Text,
        is_active -> Bool,
        credentials_changed_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        display_name -> Text,
        number -> Nullable<Text>,
        locale -> Nullable<Text>,
    }
}

diesel::joinable!(announcements -> users (publisher_id));
diesel::joinable!(auth_sessions -> users (user_id));
diesel::joinable!(course_attachments -> courses (course_id));
diesel::joinable!(course_attachments -> users (uploaded_by));
diesel::joinable!(enrollments -> sections (section_id));
diesel::joinable!(escalation_steps -> announcements (announcement_id));
diesel::joinable!(enrollments -> users (student_id));
diesel::joinable!(invitations_due -> users (user_id));
diesel::joinable!(jobs -> users (owner_id));
diesel::joinable!(password_resets -> users (user_id));
diesel::joinable!(refresh_tokens -> auth_sessions (session_id));
diesel::joinable!(sections -> courses (course_id));
diesel::joinable!(sections -> users (teacher_id));

diesel::allow_tables_to_appear_in_same_query!(
    announcements,
    auth_sessions,
    course_attachments,
    courses,
    deliveries,
    delivery_counts,
    enrollments,
    escalation_steps,
    invitations_due,
    jobs,
    mail_queue,
    object_deletions,
    password_resets,
    refresh_tokens,
    sections,
    users,
);
