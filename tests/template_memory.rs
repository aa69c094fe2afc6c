//! What rendering templates costs in memory, counted by the allocator (RSS is too coarse): the
//! largest template the limits admit, rendered 16 times at once with the longest values, stays
//! within a few MiB in all. A lease user chooses the template; every tenant shares the operator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};

use entra_operator::api::SecretTemplate;
use entra_operator::secret_template::{
    KEY_OUTPUT_LIMIT, LEASE_OUTPUT_LIMIT, TemplateValues, check, render,
};
use entra_operator::sensitive::SecretString;

/// The system allocator, counting the bytes live now and the most live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Pieces that grow the most per byte of source: a join through filters that triple it and six
/// times it, and a value through urlencode.
const PIECES: [&str; 3] = [
    "{{ (username ~ password) | upper | tojson }}",
    "{{ password | tojson | tojson }}",
    "{{ password | urlencode }}",
];

/// The largest template the limits admit, built greedily: as many pieces per key as fit under the
/// key's limit, as many keys as fit under the lease's.
fn largest_admitted_template() -> SecretTemplate {
    let mut template = SecretTemplate::default();
    for key in 0..32 {
        let name = format!("key{key}");
        let mut source = String::new();
        for piece in PIECES.iter().cycle().take(64) {
            let candidate = format!("{source}{piece}");
            let mut trial = template.clone();
            trial.data.insert(name.clone(), candidate.clone());
            if check(&trial).is_ok() {
                source = candidate;
            }
        }
        if source.is_empty() {
            break;
        }
        template.data.insert(name, source);
    }
    template
}

#[test]
fn the_largest_admitted_template_rendered_16_times_at_once_stays_within_a_few_mib() {
    let template = largest_admitted_template();
    check(&template).expect("admitted");
    assert!(template.data.len() >= LEASE_OUTPUT_LIMIT / KEY_OUTPUT_LIMIT);

    // The longest values, of the characters each filter grows the most.
    let username = "\u{0390}".repeat(128);
    let password = SecretString::from("\u{0001}".repeat(256));
    let values = TemplateValues {
        username: &username,
        password: &password,
        access_pass: false,
        user_id: "00000000-0000-0000-0000-000000000000",
        tenant_id: &"t".repeat(253),
        max_expires_at: "2026-12-01T00:00:00Z",
    };
    let one = render(&template, &values).expect("renders");
    let output: usize = one.values().map(|value| value.0.len()).sum();
    assert!(output <= LEASE_OUTPUT_LIMIT, "{output} bytes rendered");
    drop(one);

    let renders = 16;
    let barrier = Barrier::new(renders);
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    std::thread::scope(|scope| {
        for _ in 0..renders {
            scope.spawn(|| {
                barrier.wait();
                let rendered = render(&template, &values).expect("renders");
                // All 16 results are alive at once before any is dropped.
                barrier.wait();
                drop(rendered);
            });
        }
    });
    let peak = PEAK.load(Ordering::SeqCst) - before;
    println!(
        "16 concurrent renders of {} keys ({output} bytes each time): at most {peak} bytes allocated at once",
        template.data.len()
    );
    assert!(
        peak < 4 * 1024 * 1024,
        "16 renders held {peak} bytes at once"
    );
}
