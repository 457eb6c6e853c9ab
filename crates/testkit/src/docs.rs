//! Tables in `docs/` generated from the code: a test makes the table, and this keeps the file's
//! copy in step with it.

use std::path::Path;

/// Checks that the part of `path` between `<!-- generated: {name} -->` and
/// `<!-- end generated -->` is `table`. When it is not: with `MEDIAGATE_WRITE_DOCS` set, the
/// part is rewritten (the file made, with `# {title}`, when missing); otherwise the test fails,
/// naming `rewrite`, the command that rewrites it.
pub fn check_generated(path: &Path, name: &str, title: &str, table: &str, rewrite: &str) {
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let begin = format!("<!-- generated: {name} -->\n");
    let end = "<!-- end generated -->";
    let written = doc.split_once(begin.as_str()).and_then(|(_, rest)| rest.split_once(end)).map(|(t, _)| t);
    if written == Some(table) {
        return;
    }
    if std::env::var_os("MEDIAGATE_WRITE_DOCS").is_some() {
        let (head, tail) = match doc.split_once(begin.as_str()) {
            Some((head, rest)) => (head.to_string(), rest.split_once(end).map_or("\n", |(_, t)| t).to_string()),
            None => (format!("# {title}\n\n"), "\n".to_string()),
        };
        std::fs::write(path, format!("{head}{begin}{table}{end}{tail}"))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    panic!("{} is not the table the code makes; run MEDIAGATE_WRITE_DOCS=1 {rewrite}\n{table}", path.display());
}
