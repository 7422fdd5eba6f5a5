//! The bench report: figures with goals, the machine, image layers; rendered as markdown
//! tables or JSON.

use serde::Serialize;

use super::stats::Stats;

/// Unit of a figure's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Megabytes (10^6 bytes).
    Mb,
    /// A ratio (ours / baseline).
    Ratio,
}

/// What a figure's median must be to pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Strictly below the value.
    Below(f64),
    /// At most the value.
    AtMost(f64),
}

impl Goal {
    /// Whether `value` meets the goal.
    pub fn met(self, value: f64) -> bool {
        match self {
            Goal::Below(g) => value < g,
            Goal::AtMost(g) => value <= g,
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Section (`boot`, `scale-down`, `ci-storage`, `images`, `footprint`).
    pub section: String,
    /// What was measured.
    pub name: String,
    /// Unit of `stats`.
    pub unit: Unit,
    /// Summary of the samples; `None` when the measurement failed.
    pub stats: Option<Stats>,
    /// Goal, if the issue sets one.
    pub goal: Option<Goal>,
    /// How it was measured, or why it is missing.
    pub note: String,
}

impl Figure {
    /// A figure from raw samples.
    pub fn new(section: &str, name: &str, unit: Unit, samples: &[f64]) -> Figure {
        Figure {
            section: section.to_owned(),
            name: name.to_owned(),
            unit,
            stats: Stats::of(samples),
            goal: None,
            note: String::new(),
        }
    }

    /// Sets the goal.
    pub fn goal(mut self, goal: Goal) -> Figure {
        self.goal = Some(goal);
        self
    }

    /// Sets the note.
    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }

    /// `Some(true)` pass, `Some(false)` miss, `None` no goal or no samples.
    pub fn passed(&self) -> Option<bool> {
        Some(self.goal?.met(self.stats?.median))
    }
}

/// A layer of an image (`docker history`).
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Image name.
    pub image: String,
    /// The instruction that made the layer (shortened).
    pub created_by: String,
    /// Size in MB.
    pub size_mb: f64,
}

/// Everything `cargo xtask bench` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// When it ran (RFC 3339).
    pub date: String,
    /// The machine: (what, value).
    pub machine: Vec<(String, String)>,
    /// The figures, in order.
    pub figures: Vec<Figure>,
    /// Image layers with a non-zero size.
    pub layers: Vec<LayerRow>,
    /// Remarks on the whole run.
    pub notes: Vec<String>,
}

impl Report {
    /// Figures that missed their goal.
    pub fn misses(&self) -> Vec<&Figure> {
        self.figures
            .iter()
            .filter(|f| f.passed() == Some(false))
            .collect()
    }

    /// The markdown rendering: machine, one table per section, layers, notes.
    pub fn markdown(&self) -> String {
        let mut out = format!("Produced by `{}` on {}.\n\n", self.command, self.date);
        out.push_str("| machine | |\n|---|---|\n");
        for (k, v) in &self.machine {
            out.push_str(&format!("| {k} | {} |\n", cell(v)));
        }
        let mut sections: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !sections.contains(&f.section.as_str()) {
                sections.push(&f.section);
            }
        }
        for section in sections {
            out.push_str(&format!("\n### {section}\n\n"));
            out.push_str("| figure | median | min | max | runs | goal | result | how |\n");
            out.push_str("|---|---:|---:|---:|---:|---|---|---|\n");
            for f in self.figures.iter().filter(|f| f.section == section) {
                out.push_str(&row(f));
            }
        }
        if !self.layers.is_empty() {
            out.push_str("\n### image layers (non-empty, `docker history`)\n\n| image | layer | size |\n|---|---|---:|\n");
            for l in &self.layers {
                out.push_str(&format!(
                    "| {} | `{}` | {} |\n",
                    l.image,
                    cell(&l.created_by),
                    format_value(Unit::Mb, l.size_mb)
                ));
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }
}

fn row(f: &Figure) -> String {
    let (median, min, max, n) = match f.stats {
        Some(s) => (
            format_value(f.unit, s.median),
            format_value(f.unit, s.min),
            format_value(f.unit, s.max),
            s.n.to_string(),
        ),
        None => ("—".into(), "—".into(), "—".into(), "0".into()),
    };
    let goal = f.goal.map(|g| format_goal(f.unit, g)).unwrap_or_default();
    let result = match f.passed() {
        Some(true) => "pass",
        Some(false) => "**miss**",
        None if f.goal.is_some() => "n/a",
        None => "",
    };
    format!(
        "| {} | {median} | {min} | {max} | {n} | {goal} | {result} | {} |\n",
        cell(&f.name),
        cell(&f.note)
    )
}

/// Escapes a table cell (pipes, newlines).
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A value with its unit, rounded for reading.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ms if v.abs() < 10.0 => format!("{v:.1} ms"),
        Unit::Ms => format!("{v:.0} ms"),
        Unit::S if v.abs() < 10.0 => format!("{v:.2} s"),
        Unit::S => format!("{v:.1} s"),
        Unit::Mb if v.abs() < 10.0 => format!("{v:.2} MB"),
        Unit::Mb => format!("{v:.1} MB"),
        Unit::Ratio => format!("{v:.2}×"),
    }
}

fn format_goal(unit: Unit, g: Goal) -> String {
    match g {
        Goal::Below(v) => format!("< {}", format_value(unit, v)),
        Goal::AtMost(v) => format!("≤ {}", format_value(unit, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_and_results() {
        let pass =
            Figure::new("boot", "overhead", Unit::Ms, &[10.0, 20.0, 30.0]).goal(Goal::Below(50.0));
        let miss = Figure::new("ci-storage", "ratio", Unit::Ratio, &[1.2]).goal(Goal::AtMost(1.1));
        let edge = Figure::new("ci-storage", "ratio", Unit::Ratio, &[1.1]).goal(Goal::AtMost(1.1));
        let empty = Figure::new("boot", "x", Unit::Ms, &[]).goal(Goal::Below(1.0));
        assert_eq!(pass.passed(), Some(true));
        assert_eq!(miss.passed(), Some(false));
        assert_eq!(edge.passed(), Some(true));
        assert_eq!(empty.passed(), None);
        let report = Report {
            figures: vec![pass, miss, empty],
            ..Default::default()
        };
        assert_eq!(report.misses().len(), 1);
    }

    #[test]
    fn renders_tables_per_section() {
        let report = Report {
            command: "cargo xtask bench".into(),
            date: "today".into(),
            machine: vec![("cores".into(), "2".into())],
            figures: vec![
                Figure::new("boot", "total | all", Unit::Ms, &[1200.0, 1000.0, 1100.0])
                    .goal(Goal::Below(50.0))
                    .note("a"),
                Figure::new("images", "size", Unit::Mb, &[]),
            ],
            layers: vec![LayerRow {
                image: "ci-runner".into(),
                created_by: "RUN apt-get".into(),
                size_mb: 120.04,
            }],
            notes: vec!["approximate".into()],
        };
        let md = report.markdown();
        assert!(
            md.starts_with("Produced by `cargo xtask bench` on today."),
            "{md}"
        );
        assert!(md.contains("| cores | 2 |"), "{md}");
        assert!(
            md.contains("### boot\n\n| figure | median | min | max | runs | goal | result | how |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| total \\| all | 1100 ms | 1000 ms | 1200 ms | 3 | < 50 ms | **miss** | a |"
            ),
            "{md}"
        );
        assert!(md.contains("| size | — | — | — | 0 |  |  |  |"), "{md}");
        assert!(
            md.contains("| ci-runner | `RUN apt-get` | 120.0 MB |"),
            "{md}"
        );
        assert!(md.ends_with("- approximate\n"), "{md}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["figures"][0]["stats"]["median"], 1100.0);
        assert_eq!(json["figures"][0]["goal"]["below"], 50.0);
    }

    #[test]
    fn formats_values() {
        assert_eq!(format_value(Unit::Ms, 3.21), "3.2 ms");
        assert_eq!(format_value(Unit::Ms, 314.159), "314 ms");
        assert_eq!(format_value(Unit::S, 1.234), "1.23 s");
        assert_eq!(format_value(Unit::Ratio, 1.0449), "1.04×");
        assert_eq!(format_goal(Unit::Ratio, Goal::AtMost(1.1)), "≤ 1.10×");
    }
}
