//! The command's tools, kept out of the service library: benchmarks that
//! print figures against their bare-SQL baselines, and the demo school.

pub mod bench;
pub mod demo;
