//! Time to render one issue, MJML included (target: well under 50 ms).
//! `cargo bench --bench render`

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use herald::config::Settings;
use herald::issue;
use herald::render::{render_email, EmailContext, Recipient, Templates};

fn render(c: &mut Criterion) {
    let settings = Settings::default();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/issues/vol-001.md");
    let bytes = std::fs::read(&path).unwrap();
    let templates = Templates::builtin();
    let context = EmailContext {
        site_title: "云原生生态周报",
        language: "zh-CN",
    };
    c.bench_function("parse issue vol-001", |b| {
        b.iter(|| {
            issue::parse_issue(&path, &bytes, &settings.site.base_url)
                .issue
                .unwrap()
        })
    });
    let parsed = issue::parse_issue(&path, &bytes, &settings.site.base_url)
        .issue
        .unwrap();
    c.bench_function("render email vol-001 (handlebars + mrml + text)", |b| {
        b.iter(|| render_email(&parsed, &context, &templates).unwrap())
    });
    let email = render_email(&parsed, &context, &templates).unwrap();
    let recipient = Recipient {
        email: "reader@example.com",
        unsubscribe_url: "https://news.example.com/unsubscribe/abcdef",
        web_url: "https://news.example.com/issues/vol-001/",
        click_query: "",
    };
    c.bench_function("personalise one copy (html + text)", |b| {
        b.iter(|| (email.html.fill(&recipient), email.text.fill(&recipient)))
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
