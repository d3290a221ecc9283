//! `report.json`: the run model itself, the input of `report`, `plot`
//! and `compare`.

use anyhow::Result;

use super::{Artifact, Format};
use crate::model::Report;

pub use crate::model::report::FILE_NAME;

pub struct ReportJson;

impl Format for ReportJson {
    fn render(&self, report: &Report, _earlier: &[Artifact]) -> Result<Vec<Artifact>> {
        Ok(vec![Artifact::new(FILE_NAME, report.to_json()?)])
    }
}
