//! The API reference (`docs/API.md`), generated from the doc comments of `proto/`.
//!
//! The comments travel in the compiled file descriptor set (protox keeps source info), so
//! the reference cannot drift from the proto: the unit tests below fail when an element
//! lacks a comment, and `tests/it/docs.rs` when `docs/API.md` is not what [`render`]
//! produces (`credit-risk docs` rewrites it).

use std::collections::HashMap;
use std::fmt::Write as _;

use prost::Message;
use prost_types::{
    field_descriptor_proto::{Label, Type},
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, ServiceDescriptorProto,
};

/// The proto package the reference covers.
pub const PACKAGE: &str = "creditrisk.v1";

// Field numbers in descriptor.proto, used in source-code-info paths.
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

/// Leading comments of one file, by source-code-info path.
struct Comments(HashMap<Vec<i32>, String>);

/// A message or enum found in a file: qualified name (within the package), element,
/// source path and the file's comments.
type Found<'a, T> = (String, &'a T, Vec<i32>, &'a Comments);

impl Comments {
    fn of(file: &FileDescriptorProto) -> Comments {
        let mut map = HashMap::new();
        if let Some(info) = &file.source_code_info {
            for loc in &info.location {
                if let Some(c) = &loc.leading_comments {
                    let text = clean(c);
                    if !text.is_empty() {
                        map.insert(loc.path.clone(), text);
                    }
                }
            }
        }
        Comments(map)
    }

    fn get(&self, path: &[i32]) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }
}

/// Trims each comment line and drops the blank lines at either end.
fn clean(raw: &str) -> String {
    let lines: Vec<&str> = raw.lines().map(str::trim).collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    lines[start..end].join("\n")
}

/// The descriptor set compiled into this binary.
pub fn descriptor_set() -> Result<FileDescriptorSet, prost::DecodeError> {
    FileDescriptorSet::decode(credit_risk::proto::FILE_DESCRIPTOR_SET)
}

/// The files of [`PACKAGE`], sorted by name.
fn package_files(set: &FileDescriptorSet) -> Vec<&FileDescriptorProto> {
    let mut files: Vec<_> = set.file.iter().filter(|f| f.package() == PACKAGE).collect();
    files.sort_by(|a, b| a.name().cmp(b.name()));
    files
}

/// The source path of the `index`-th element of `field` under `path`.
fn child(path: &[i32], field: i32, index: usize) -> Vec<i32> {
    [path, &[field, index as i32]].concat()
}

/// The package's files with their comments, and every message and enum in them (nested
/// ones included, map entries left out): the one walk both the check and the reference use.
struct Package<'a> {
    files: Vec<(&'a FileDescriptorProto, Comments)>,
}

type Walked<'a> = (
    Vec<Found<'a, DescriptorProto>>,
    Vec<Found<'a, EnumDescriptorProto>>,
);

impl<'a> Package<'a> {
    fn of(set: &'a FileDescriptorSet) -> Package<'a> {
        Package {
            files: package_files(set)
                .into_iter()
                .map(|f| (f, Comments::of(f)))
                .collect(),
        }
    }

    fn messages_and_enums(&self) -> Walked<'_> {
        let mut messages = Vec::new();
        let mut enums = Vec::new();
        for (file, c) in &self.files {
            for (i, m) in file.message_type.iter().enumerate() {
                collect(
                    m,
                    vec![FILE_MESSAGE, i as i32],
                    "",
                    c,
                    &mut messages,
                    &mut enums,
                );
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                enums.push((e.name().to_owned(), e, vec![FILE_ENUM, i as i32], c));
            }
        }
        (messages, enums)
    }
}

/// Every service, RPC, message, field, enum and enum value of [`PACKAGE`] that has no
/// leading doc comment, as fully qualified names.
pub fn undocumented(set: &FileDescriptorSet) -> Vec<String> {
    let pkg = Package::of(set);
    let mut missing = Vec::new();
    let mut need = |c: &Comments, path: &[i32], name: String| {
        if c.get(path).is_none() {
            missing.push(format!("{PACKAGE}.{name}"));
        }
    };
    for (file, c) in &pkg.files {
        for (i, s) in file.service.iter().enumerate() {
            let p = [FILE_SERVICE, i as i32];
            need(c, &p, s.name().to_owned());
            for (j, m) in s.method.iter().enumerate() {
                let name = format!("{}.{}", s.name(), m.name());
                need(c, &child(&p, SERVICE_METHOD, j), name);
            }
        }
    }
    let (messages, enums) = pkg.messages_and_enums();
    for (name, m, path, c) in &messages {
        need(c, path, name.clone());
        for (j, f) in m.field.iter().enumerate() {
            need(
                c,
                &child(path, MESSAGE_FIELD, j),
                format!("{name}.{}", f.name()),
            );
        }
    }
    for (name, e, path, c) in &enums {
        need(c, path, name.clone());
        for (j, v) in e.value.iter().enumerate() {
            need(
                c,
                &child(path, ENUM_VALUE, j),
                format!("{name}.{}", v.name()),
            );
        }
    }
    missing
}

/// Renders the Markdown API reference of [`PACKAGE`].
pub fn render(set: &FileDescriptorSet) -> String {
    let pkg = Package::of(set);
    let mut out = String::new();
    out.push_str("# API reference: `creditrisk.v1`\n\n");
    out.push_str(
        "Generated from the doc comments in `proto/creditrisk/v1/` by `src/cli/apidoc.rs`; \
         do not edit by hand. Regenerate with `cargo run -- docs`.\n\n",
    );
    out.push_str(
        "Conventions: dates are `YYYY-MM-DD` (Asia/Shanghai), money is integer fen \
         (1/100 yuan), every enum's zero value is `*_UNSPECIFIED` and is never a valid \
         input. Servers also serve `grpc.health.v1.Health` and server reflection.\n\n",
    );
    out.push_str("## Contents\n\n");
    for (file, _) in &pkg.files {
        for s in &file.service {
            let _ = writeln!(out, "- [{0}](#{1})", s.name(), anchor(s.name()));
        }
    }
    out.push_str("- [Messages](#messages)\n- [Enums](#enums)\n\n");

    for (file, c) in &pkg.files {
        for (i, s) in file.service.iter().enumerate() {
            render_service(&mut out, s, c, &[FILE_SERVICE, i as i32], file.name());
        }
    }

    let (messages, enums) = pkg.messages_and_enums();
    out.push_str("## Messages\n\n");
    for (name, m, path, c) in &messages {
        render_message(&mut out, name, m, path, c);
    }
    out.push_str("## Enums\n\n");
    for (name, e, path, c) in &enums {
        render_enum(&mut out, name, e, path, c);
    }
    out
}

fn collect<'a>(
    m: &'a DescriptorProto,
    path: Vec<i32>,
    scope: &str,
    c: &'a Comments,
    messages: &mut Vec<Found<'a, DescriptorProto>>,
    enums: &mut Vec<Found<'a, EnumDescriptorProto>>,
) {
    if m.options.as_ref().and_then(|o| o.map_entry) == Some(true) {
        return;
    }
    let name = if scope.is_empty() {
        m.name().to_owned()
    } else {
        format!("{scope}.{}", m.name())
    };
    messages.push((name.clone(), m, path.clone(), c));
    for (j, n) in m.nested_type.iter().enumerate() {
        collect(
            n,
            child(&path, MESSAGE_NESTED, j),
            &name,
            c,
            messages,
            enums,
        );
    }
    for (j, e) in m.enum_type.iter().enumerate() {
        let p = child(&path, MESSAGE_ENUM, j);
        enums.push((format!("{name}.{}", e.name()), e, p, c));
    }
}

fn anchor(name: &str) -> String {
    name.to_lowercase().replace('.', "")
}

fn short_type(name: &str) -> &str {
    name.strip_prefix(&format!(".{PACKAGE}."))
        .or_else(|| name.strip_prefix('.'))
        .unwrap_or(name)
}

/// A type name linked to its section when it is ours.
fn type_link(name: &str) -> String {
    let short = short_type(name);
    if name.starts_with(&format!(".{PACKAGE}.")) {
        format!("[`{short}`](#{})", anchor(short))
    } else {
        format!("`{short}`")
    }
}

fn render_service(
    out: &mut String,
    s: &ServiceDescriptorProto,
    c: &Comments,
    path: &[i32],
    file: &str,
) {
    let _ = writeln!(out, "## {}\n", s.name());
    let _ = writeln!(out, "_Defined in `proto/{file}`._\n");
    if let Some(doc) = c.get(path) {
        let _ = writeln!(out, "{doc}\n");
    }
    for (j, m) in s.method.iter().enumerate() {
        let stream = |yes: Option<bool>| if yes == Some(true) { "stream " } else { "" };
        let _ = writeln!(out, "### {}.{}\n", s.name(), m.name());
        let _ = writeln!(
            out,
            "`rpc {}({}{}) returns ({}{})` — request {}, response {}\n",
            m.name(),
            stream(m.client_streaming),
            short_type(m.input_type()),
            stream(m.server_streaming),
            short_type(m.output_type()),
            type_link(m.input_type()),
            type_link(m.output_type()),
        );
        if let Some(doc) = c.get(&child(path, SERVICE_METHOD, j)) {
            let _ = writeln!(out, "{doc}\n");
        }
    }
}

fn field_type(f: &FieldDescriptorProto, maps: &HashMap<String, (String, String)>) -> String {
    let t = match f.r#type() {
        Type::Message | Type::Enum | Type::Group => {
            if let Some((k, v)) = maps.get(f.type_name()) {
                return format!("map<{k}, {v}>");
            }
            type_link(f.type_name())
        }
        other => format!(
            "`{}`",
            other
                .as_str_name()
                .trim_start_matches("TYPE_")
                .to_lowercase()
        ),
    };
    match f.label() {
        Label::Repeated => format!("repeated {t}"),
        _ if f.proto3_optional == Some(true) => format!("optional {t}"),
        _ => t,
    }
}

/// One table cell: wrapped lines are joined, paragraph breaks and list items become
/// `<br>`, pipes are escaped.
fn cell(doc: &str) -> String {
    let mut out = String::new();
    for line in doc.lines().map(str::trim) {
        if out.is_empty() {
            out.push_str(line);
        } else if line.is_empty() {
            out.push_str("<br><br>");
        } else {
            if line.starts_with("- ") && !out.ends_with("<br>") {
                out.push_str("<br>");
            } else if !out.ends_with("<br>") {
                out.push(' ');
            }
            out.push_str(line);
        }
    }
    out.replace('|', "\\|")
}

fn render_message(out: &mut String, name: &str, m: &DescriptorProto, path: &[i32], c: &Comments) {
    let _ = writeln!(out, "### {name}\n");
    if let Some(doc) = c.get(path) {
        let _ = writeln!(out, "{doc}\n");
    }
    if m.field.is_empty() {
        out.push_str("_No fields._\n\n");
        return;
    }
    let maps: HashMap<String, (String, String)> = m
        .nested_type
        .iter()
        .filter(|n| n.options.as_ref().and_then(|o| o.map_entry) == Some(true))
        .filter_map(|n| {
            let k = n.field.first()?;
            let v = n.field.get(1)?;
            let empty = HashMap::new();
            Some((
                format!(".{PACKAGE}.{name}.{}", n.name()),
                (
                    field_type(k, &empty).trim_matches('`').to_owned(),
                    field_type(v, &empty),
                ),
            ))
        })
        .collect();
    out.push_str("| # | field | type | description |\n|---|---|---|---|\n");
    for (j, f) in m.field.iter().enumerate() {
        let doc = c.get(&child(path, MESSAGE_FIELD, j)).unwrap_or("");
        let oneof = f
            .oneof_index
            .filter(|_| f.proto3_optional != Some(true))
            .and_then(|i| m.oneof_decl.get(i as usize))
            .map(|o| format!(" (one of `{}`)", o.name()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | `{}` | {}{} | {} |",
            f.number(),
            f.name(),
            field_type(f, &maps),
            oneof,
            cell(doc)
        );
    }
    out.push('\n');
}

fn render_enum(out: &mut String, name: &str, e: &EnumDescriptorProto, path: &[i32], c: &Comments) {
    let _ = writeln!(out, "### {name}\n");
    if let Some(doc) = c.get(path) {
        let _ = writeln!(out, "{doc}\n");
    }
    out.push_str("| value | name | description |\n|---|---|---|\n");
    for (j, v) in e.value.iter().enumerate() {
        let doc = c.get(&child(path, ENUM_VALUE, j)).unwrap_or("");
        let _ = writeln!(out, "| {} | `{}` | {} |", v.number(), v.name(), cell(doc));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_join_wrapped_lines_and_keep_lists_and_paragraphs() {
        assert_eq!(
            cell("Wrapped\nline.\n- one\n- two\n\nNext | para."),
            "Wrapped line.<br>- one<br>- two<br><br>Next \\| para."
        );
        assert_eq!(clean("\n  a\n  b \n\n"), "a\nb");
    }

    #[test]
    fn every_element_is_documented() {
        let set = descriptor_set().expect("descriptor set decodes");
        let missing = undocumented(&set);
        assert!(
            missing.is_empty(),
            "{} proto elements lack a leading doc comment:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }

    #[test]
    fn reference_covers_every_rpc() {
        let set = descriptor_set().expect("descriptor set decodes");
        let text = render(&set);
        let mut rpcs = 0;
        for file in set.file.iter().filter(|f| f.package() == PACKAGE) {
            for s in &file.service {
                for m in &s.method {
                    rpcs += 1;
                    let heading = format!("### {}.{}\n", s.name(), m.name());
                    assert!(text.contains(&heading), "missing {heading}");
                }
            }
        }
        assert!(rpcs > 20, "only {rpcs} RPCs found");
    }
}
