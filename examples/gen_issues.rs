//! Writes N synthetic issues for benchmarks: `cargo run --release --example
//! gen_issues -- 500 /tmp/issues`. Each issue is about the size of a real
//! weekly (four sections, sixteen items, Chinese and English text, code,
//! lists and links), one week after the other, so `herald build` has
//! realistic work to do. Deterministic: the same N gives the same files.

use std::fmt::Write as _;
use std::path::PathBuf;

const TOPICS: [&str; 8] = [
    "Kubernetes",
    "Knative",
    "Istio",
    "containerd",
    "Envoy",
    "Prometheus",
    "etcd",
    "gVisor",
];
const SECTIONS: [&str; 4] = ["业界要闻", "上游进展", "Open source picks", "本周阅读"];

fn issue(number: u32) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(2015, 1, 5).expect("valid date")
        + chrono::Duration::weeks(i64::from(number) - 1);
    let topic = TOPICS[number as usize % TOPICS.len()];
    let mut text = String::new();
    writeln!(
        text,
        "+++\ntitle = \"云原生生态周报 第 {number} 期: {topic} & friends\"\nnumber = {number}\n\
         date = {date}\nsummary = \"本期关注 {topic} 的新版本、社区动态与 <三篇> 好文。\"\n\
         authors = [\"张磊\", \"临石\", \"O'Brien\"]\neditor = \"木环\"\nslug = \"vol-{number:04}\"\n+++"
    )
    .expect("writing to a String");
    writeln!(
        text,
        "《云原生生态周报》第 {number} 期。一线社区的专家们和你一起追踪 **{topic}** 的动态、\
         读懂技术走向:项目进展、活动发布、值得一读的博客,都在这里。\n"
    )
    .expect("writing to a String");
    for (s, section) in SECTIONS.iter().enumerate() {
        writeln!(text, "## {section}\n").expect("writing to a String");
        for i in 0..4 {
            writeln!(
                text,
                "### [{topic} {number}.{s}.{i}: a release worth reading about](https://example.com/{number}/{s}/{i}?ref=herald&lang=zh-CN)\n\n\
                 {topic} 发布了新版本,带来了更快的调度、更稳的网络和一个 `--dry-run` 选项。\
                 This paragraph mixes English and 中文 so that wrapping and escaping \
                 (`<`, `>`, `&`) get exercised the way a real issue does.\n\n\
                 - first change, see [the notes](https://example.com/notes/{number}/{i})\n\
                 - second change\n\n\
                 ```sh\nkubectl apply -k ./overlays/{number}\n```\n"
            )
            .expect("writing to a String");
        }
    }
    text
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u32 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("usage: gen_issues COUNT DIR");
    let dir = PathBuf::from(args.next().expect("usage: gen_issues COUNT DIR"));
    std::fs::create_dir_all(&dir).expect("creating the issues folder");
    for number in 1..=count {
        let path = dir.join(format!("vol-{number:04}.md"));
        std::fs::write(&path, issue(number)).expect("writing an issue");
    }
    println!("wrote {count} issues into {}", dir.display());
}
