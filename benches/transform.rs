//! Throughput of the full Firehose transform (base64 decode, parse, validate,
//! enrich, serialize, encode) on 3 MB and 20 MB requests of generated events.
//! The 20 MB request's response is over Firehose's 6 MB limit, so the limit is
//! lifted here to measure the work rather than the early refusal.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eventlake::firehose;
use eventlake::generate::{FirehoseBatcher, Generator, Options};

/// One request whose records add up to `record_bytes` of event JSON.
fn request(record_bytes: usize) -> String {
    let mut generator = Generator::new(Options::default());
    let mut batcher = FirehoseBatcher::new(1, record_bytes);
    loop {
        if let Some(request) = batcher.push(&generator.next_record()) {
            return request;
        }
    }
}

/// No response limit: the 20 MB request is measured, not refused.
fn unlimited() -> firehose::Settings {
    firehose::Settings { max_response_bytes: usize::MAX, ..firehose::Settings::default() }
}

fn transform(c: &mut Criterion) {
    let mut group = c.benchmark_group("transform");
    group.sample_size(20);
    for megabytes in [3, 20] {
        // A 3 MB request carries about 2.2 MB of events once base64-encoded.
        let request = request(megabytes * 1024 * 1024 * 3 / 4);
        group.throughput(Throughput::Bytes(request.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{megabytes}MB")),
            &request,
            |b, request| b.iter(|| firehose::transform_with(request, &unlimited()).map(|t| t.stats.ok)),
        );
    }
    group.finish();
}

criterion_group!(benches, transform);
criterion_main!(benches);
