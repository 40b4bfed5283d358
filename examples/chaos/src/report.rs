//! The tables the harness prints: one per scenario, a row per measure, with its goal and
//! whether it was met.

/// One measured row.
pub(crate) struct Row {
    /// What was measured.
    pub(crate) measure: String,
    /// The figure.
    pub(crate) value: String,
    /// The goal, as text (empty: reported only).
    pub(crate) goal: String,
    /// `Some(met)` when the row has a goal.
    pub(crate) met: Option<bool>,
}

/// A scenario's outcome.
pub(crate) struct Table {
    /// Scenario name and set-up, one line.
    pub(crate) title: String,
    /// The rows.
    pub(crate) rows: Vec<Row>,
    /// Notes printed under the table (error kinds seen, and the like).
    pub(crate) notes: Vec<String>,
}

impl Table {
    /// An empty table titled `title`.
    pub(crate) fn new(title: impl Into<String>) -> Self {
        Table {
            title: title.into(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A row without a goal.
    pub(crate) fn info(&mut self, measure: &str, value: impl ToString) {
        self.rows.push(Row {
            measure: measure.into(),
            value: value.to_string(),
            goal: String::new(),
            met: None,
        });
    }

    /// A row with a goal.
    pub(crate) fn goal(&mut self, measure: &str, value: impl ToString, goal: &str, met: bool) {
        self.rows.push(Row {
            measure: measure.into(),
            value: value.to_string(),
            goal: goal.into(),
            met: Some(met),
        });
    }

    /// Rows whose goal was missed.
    pub(crate) fn missed(&self) -> usize {
        self.rows.iter().filter(|r| r.met == Some(false)).count()
    }

    /// The table as Markdown.
    pub(crate) fn render(&self) -> String {
        let mut out = format!(
            "### {}\n\n| measure | value | goal | |\n|---|---:|---|---|\n",
            self.title
        );
        for r in &self.rows {
            let mark = match r.met {
                Some(true) => "met",
                Some(false) => "**MISSED**",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {mark} |\n",
                r.measure, r.value, r.goal
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("\n{n}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_goals_are_counted_and_marked() {
        let mut t = Table::new("x");
        t.info("calls", 10);
        t.goal("failed", 0, "0", true);
        t.goal("dup", 2, "0", false);
        assert_eq!(t.missed(), 1);
        let text = t.render();
        assert!(text.contains("| dup | 2 | 0 | **MISSED** |"), "{text}");
        assert!(text.contains("| calls | 10 |  |  |"), "{text}");
    }
}
