//! classbell: announcements for a school, delivered live and acknowledged.
//!
//! The crate is organised by the school's domains (`auth`, `users`, …); each
//! keeps its routes, queries (`store`) and model together. `startup` wires
//! them into one actix-web app.

pub mod announcements;
pub mod attachments;
pub mod auth;
pub mod config;
pub mod courses;
pub mod db;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod locale;
pub mod mail;
pub mod openapi;
pub mod pagination;
pub mod pool;
pub mod postmaster;
pub mod realtime;
pub mod redis;
pub mod school;
pub mod sections;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod users;
pub mod validate;
pub mod web;
