//! One integration-test binary: real PostgreSQL, Redis and SMTP, the real app
//! on a free port, HTTP in between.

mod announcements;
mod attachments;
mod attacks;
mod audiences;
mod auth;
mod cli;
mod databases;
mod deadlines;
mod errors;
mod helpers;
mod inboxes;
mod jobs;
mod layers;
mod locales;
mod mail;
mod nodes;
mod ops;
mod passwords;
mod people;
mod realtime;
mod rosters;
mod school;
mod unstorable;
mod users;
mod web;
mod ws_client;
