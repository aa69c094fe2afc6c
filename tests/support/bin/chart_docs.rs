//! `make chart-docs`: writes the chart's values.schema.json descriptions and README.md from the
//! `# --` comments of its values.yaml.

use entra_test_support::chart_docs;

fn main() {
    let chart = entra_test_support::workspace_dir().join("charts/entra-operator");
    match chart_docs::generate(&chart) {
        Ok(docs) => {
            std::fs::write(chart.join("values.schema.json"), docs.schema).expect("schema written");
            std::fs::write(chart.join("README.md"), docs.readme).expect("README written");
        }
        Err(problem) => {
            eprintln!("chart-docs: {problem}");
            std::process::exit(1);
        }
    }
}
