//! Everything a run writes or prints; reads only the run model.

pub mod report;
pub mod table;
