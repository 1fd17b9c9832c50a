//! The inspector directory (执法检查人员名录).

use super::*;
use crate::domain::DomainError;

/// Creates or replaces an inspector of the directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpsertInspector(pub Inspector);

impl Operation for UpsertInspector {
    type Output = Inspector;
    fn cause(&self) -> String {
        format!("inspector/{} active={}", self.0.id, self.0.active)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Inspector> {
        let (w, p) = tx.parts();
        w.upsert_inspector(p, self.0)
    }
    logged!(UpsertInspector);
}

impl Writer {
    /// Creates or replaces an inspector (a scoped actor: only of its regions, before and
    /// after); the same inspector again changes nothing.
    pub(super) fn upsert_inspector(&self, p: &mut Pending, mut x: Inspector) -> Result<Inspector> {
        let now_ms = p.at.now_ms;
        x.validate()?;
        let catalogue = &self.options.check_items;
        if x.department.trim().is_empty() {
            x.department = catalogue.default_department.clone();
        }
        if catalogue.department(&x.department).is_none() {
            return Err(Error::Invalid(DomainError::invalid(
                "inspector.department",
                format!(
                    "{:?} is not a department of the check-item catalogue ({})",
                    x.department,
                    catalogue.department_codes()
                ),
            )));
        }
        p.check_region("inspector.home_region_code", &x.home_region)?;
        let key = draws::inspector_key(&x.id);
        if let Some(v) = p.get(&key)? {
            let old = draws::decode_inspector(&v, &catalogue.default_department)?;
            // A district manages only its own inspectors (also when moving one).
            p.check_region("inspector.id", &old.home_region)?;
            x.recorded_at_ms = old.recorded_at_ms;
            if old == x {
                return Ok(x);
            }
        }
        x.recorded_at_ms = now_ms;
        p.put(key, draws::encode_inspector(&x)?);
        Ok(x)
    }
}
