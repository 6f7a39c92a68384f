//! How much work the store holds that is not finished, for the daemon's metrics.

use crate::{Store, StoreError};
use sqlx::Row as _;

/// The unfinished rows of a table with `phase` and `lease_until` columns, counted by state.
macro_rules! work_query {
    ($table:literal) => {
        concat!(
            "SELECT COUNT(CASE WHEN phase = 'Pending' THEN 1 END) AS queued, ",
            "COUNT(CASE WHEN phase = 'Running' AND lease_until >= $1 THEN 1 END) AS running, ",
            "COUNT(CASE WHEN phase = 'Running' AND lease_until < $1 THEN 1 END) AS stalled ",
            "FROM ",
            $table,
            " WHERE phase IN ('Pending', 'Running')"
        )
    };
}

impl Store {
    /// Promotions and verifications not finished, by kind (`promotion`, `verification`) and
    /// state: `queued` (Pending), `running` (Running under a lease that has not ended at
    /// `now`) or `stalled` (Running, its runner's lease ended: another replica takes it over).
    /// Every combination is listed, with 0 when there is none.
    pub async fn work_counts(&self, now: i64) -> Result<Vec<(&'static str, &'static str, i64)>, StoreError> {
        let mut counts = Vec::new();
        for (kind, query) in [
            ("promotion", work_query!("promotions")),
            ("verification", work_query!("verifications")),
        ] {
            let row = sqlx::query(query).bind(now).fetch_one(&self.pool).await?;
            for state in ["queued", "running", "stalled"] {
                counts.push((kind, state, row.try_get::<i64, _>(state)?));
            }
        }
        Ok(counts)
    }
}
