//! Notification delivery: one queue and worker per receiver integration.
//! Each delivery is a tokio task (at most `max_in_flight` per integration)
//! on one of the delivery lanes ([`lanes`]: threads of their own, taken in
//! turn) that calls the integration's notifier plugin asynchronously (see
//! [`crate::plugins::Plugin::send_with`]: no blocking thread, no hand-off
//! between threads while the plugin waits on its receiver); retryable failures are retried with exponential backoff and
//! jitter (honouring `Retry-After`) until `give_up_after`; permanent failures
//! are not retried. Every attempt's outcome lands in the delivery log.
//! Nothing here blocks rule evaluation or routing: the dispatcher only
//! enqueues.
//!
//! Per integration, queued notifications wait in priority order (critical
//! first, then by arrival) and leave at most as fast as the integration's
//! rate limit allows (`notify.rate_limits`, e.g. PagerDuty's 120 events/min
//! per routing key). With a data dir, every accepted notification is
//! journaled ([`journal`]) until it is delivered or given up on, and
//! re-queued at start.
//!
//! Each integration gets its own `http` capability, limited to the hosts its
//! config names (see [`crate::plugins::netguard`] for the address checks).
//!
//! Never imports rules or route.

pub mod journal;
mod lanes;
mod wit;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::alert::Notification;
use crate::config::{Config, Integration, NotifyConfig, RateLimit, parse_network};
use crate::plugins::bindings::types;
use crate::plugins::{
    CallError, HttpCapability, NetPolicy, PluginKind, PluginRegistry, SmtpCapability,
};

/// How many delivery records the log keeps.
const DELIVERY_LOG_CAPACITY: usize = 1000;

/// The most notifications one `send-batch` call delivers. 64 rather than
/// 16: 11% less CPU per notification in the Alertmanager comparison (five
/// alternating runs, 82 against 92 µs); 256 was no better than 64.
const MAX_BATCH: usize = 64;

/// A notification for one integration of one receiver; `done` reports
/// whether it was delivered (after retries).
pub struct DeliveryRequest {
    pub receiver: String,
    pub integration: usize,
    pub notification: Notification,
    pub done: Done,
    /// Set by [`NotifyHandle::enqueue`] when the request was journaled.
    pub journal_id: Option<u64>,
}

/// Tells whoever queued a notification whether it was delivered, once:
/// `send(true)` when delivered, `send(false)` when given up on; dropped
/// without a word (a queue that refused it, a shutdown) it reports `false`.
/// A callback rather than a channel, so the routing flush waiting on it
/// needs no task of its own.
pub struct Done(Option<Box<dyn FnOnce(bool) + Send>>);

impl Done {
    /// Calls `report` with the outcome.
    pub fn new(report: impl FnOnce(bool) + Send + 'static) -> Self {
        Self(Some(Box::new(report)))
    }

    /// Nobody waits for the outcome (a notification recovered from the
    /// journal).
    pub fn nobody() -> Self {
        Self(None)
    }

    /// Sends the outcome on a channel.
    pub fn channel(tx: oneshot::Sender<bool>) -> Self {
        Self::new(move |delivered| {
            let _ = tx.send(delivered);
        })
    }

    /// Reports the outcome.
    pub fn send(mut self, delivered: bool) {
        if let Some(report) = self.0.take() {
            report(delivered);
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(report) = self.0.take() {
            report(false);
        }
    }
}

/// Why a notification could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("no integration {integration} on receiver `{receiver}`")]
    UnknownIntegration {
        receiver: String,
        integration: usize,
    },
    #[error("queue of receiver `{receiver}` integration {integration} is full")]
    QueueFull {
        receiver: String,
        integration: usize,
    },
    #[error("cannot journal the notification: {0}")]
    Journal(#[from] std::io::Error),
}

/// One line of the delivery log.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub time: DateTime<Utc>,
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
    pub status: String,
    pub alerts: usize,
    /// `delivered`, `retrying`, `failed` or `gave_up`.
    pub outcome: String,
    pub attempt: u32,
    pub detail: String,
}

/// Where notifications are enqueued; cheap to clone.
#[derive(Clone)]
pub struct NotifyHandle {
    queues: Arc<HashMap<(String, usize), mpsc::Sender<DeliveryRequest>>>,
    log: Arc<Mutex<VecDeque<DeliveryRecord>>>,
    journal: Option<Arc<journal::Journal>>,
    /// The workers (and through them their deliveries in flight, and the
    /// delivery lanes, which stop once no worker holds them).
    workers: Arc<Vec<tokio::task::AbortHandle>>,
}

impl NotifyHandle {
    /// Queues a delivery (journaling it first when there is a journal);
    /// never waits.
    pub fn enqueue(&self, request: DeliveryRequest) -> Result<(), EnqueueError> {
        let mut refused = None;
        self.enqueue_many(vec![request], |_, e| refused = Some(e));
        refused.map_or(Ok(()), Err)
    }

    /// Queues deliveries, journaling them in one write when there is a
    /// journal; never waits. Each request that cannot be queued is handed
    /// to `refused` with the reason (dropping it makes its `done` report
    /// `false`).
    pub fn enqueue_many(
        &self,
        requests: Vec<DeliveryRequest>,
        mut refused: impl FnMut(DeliveryRequest, EnqueueError),
    ) {
        let mut accepted = Vec::with_capacity(requests.len());
        for request in requests {
            let key = (request.receiver.clone(), request.integration);
            let permit = match self.queues.get(&key) {
                None => Err(EnqueueError::UnknownIntegration {
                    receiver: key.0,
                    integration: key.1,
                }),
                Some(queue) => queue.try_reserve().map_err(|_| EnqueueError::QueueFull {
                    receiver: key.0,
                    integration: key.1,
                }),
            };
            match permit {
                Ok(permit) => accepted.push((request, permit)),
                Err(e) => refused(request, e),
            }
        }
        if let Some(j) = &self.journal {
            let entries = accepted
                .iter()
                .map(|(r, _)| (r.receiver.as_str(), r.integration, &r.notification));
            match j.enqueue_many(entries) {
                Ok(ids) => {
                    for ((request, _), id) in accepted.iter_mut().zip(ids) {
                        request.journal_id = Some(id);
                    }
                }
                Err(e) => {
                    for (request, _) in accepted {
                        let copy = std::io::Error::new(e.kind(), e.to_string());
                        refused(request, EnqueueError::Journal(copy));
                    }
                    return;
                }
            }
        }
        for (request, permit) in accepted {
            permit.send(request);
        }
    }

    /// Stops every worker and delivery in flight and flushes the journal:
    /// what was not delivered is delivered by the next start on the same
    /// data dir.
    pub fn shutdown(&self) {
        for w in self.workers.iter() {
            w.abort();
        }
        if let Some(j) = &self.journal {
            j.sync();
        }
    }

    /// Notifications accepted and not yet delivered or given up on (known
    /// only with a journal).
    pub fn pending(&self) -> Option<usize> {
        self.journal.as_ref().map(|j| j.pending())
    }

    /// A handle whose integrations all feed one channel instead of plugins:
    /// for tests and benchmarks of routing.
    #[doc(hidden)]
    pub fn capture(
        receiver: &str,
        integrations: usize,
        capacity: usize,
    ) -> (Self, mpsc::Receiver<DeliveryRequest>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queues = (0..integrations)
            .map(|i| ((receiver.to_string(), i), tx.clone()))
            .collect();
        let handle = Self {
            queues: Arc::new(queues),
            log: Arc::new(Mutex::new(VecDeque::new())),
            journal: None,
            workers: Arc::new(Vec::new()),
        };
        (handle, rx)
    }

    /// Like [`NotifyHandle::capture`], for several receivers: `(name,
    /// integrations)` each.
    #[doc(hidden)]
    pub fn capture_many(
        receivers: &[(&str, usize)],
        capacity: usize,
    ) -> (Self, mpsc::Receiver<DeliveryRequest>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queues = receivers
            .iter()
            .flat_map(|&(name, n)| (0..n).map(move |i| (name.to_string(), i)))
            .map(|key| (key, tx.clone()))
            .collect();
        let handle = Self {
            queues: Arc::new(queues),
            log: Arc::new(Mutex::new(VecDeque::new())),
            journal: None,
            workers: Arc::new(Vec::new()),
        };
        (handle, rx)
    }

    /// The most recent delivery records, newest last.
    pub fn delivery_log(&self) -> Vec<DeliveryRecord> {
        self.log.lock().iter().cloned().collect()
    }
}

struct IntegrationCtx {
    receiver: String,
    plugin: String,
    config: String,
    plugins: Arc<PluginRegistry>,
    /// The integration's `http` capability per delivery lane (one, for the
    /// caller's runtime, without lanes); an error when its network policy
    /// could not be built (its deliveries then fail with the reason).
    http: Result<Vec<Arc<HttpCapability>>, String>,
    /// Only for integrations whose config names a `smarthost`.
    smtp: Option<Arc<SmtpCapability>>,
    /// Where its deliveries run (shared by the generation's integrations).
    lanes: Arc<lanes::Lanes>,
    settings: NotifyConfig,
    log: Arc<Mutex<VecDeque<DeliveryRecord>>>,
    rate: Option<RateLimit>,
    journal: Option<Arc<journal::Journal>>,
}

impl IntegrationCtx {
    /// The `http` capability of deliveries on `lane`.
    fn http(&self, lane: usize) -> Result<Arc<HttpCapability>, &str> {
        match &self.http {
            Ok(per_lane) => per_lane
                .get(lane)
                .or(per_lane.first())
                .cloned()
                .ok_or("no http capability"),
            Err(e) => Err(e),
        }
    }

    /// Whether the integration's live notifier delivers batches.
    fn sends_batches(&self) -> bool {
        self.plugins
            .get_kind(&self.plugin, PluginKind::Notifier)
            .is_ok_and(|p| p.sends_batches())
    }
}

/// Starts the delivery lanes and a worker per integration of every
/// receiver; returns the handle to enqueue on. With a data dir,
/// notifications journaled by a previous run and never delivered are queued
/// again. Must be called inside a tokio runtime. Fails when the journal
/// cannot be opened or a lane's thread cannot start.
pub fn start(
    config: &Config,
    plugins: Arc<PluginRegistry>,
    data_dir: Option<&Path>,
) -> std::io::Result<NotifyHandle> {
    let (journal, recovered) = match data_dir {
        Some(dir) => {
            let (j, recovered) = journal::Journal::open(dir)?;
            (Some(Arc::new(j)), recovered)
        }
        None => (None, Vec::new()),
    };
    let settings = config.notify.clone();
    let lanes = Arc::new(lanes::Lanes::start(
        settings
            .delivery_threads
            .unwrap_or_else(lanes::default_count),
    )?);
    let log = Arc::new(Mutex::new(VecDeque::with_capacity(DELIVERY_LOG_CAPACITY)));
    let mut queues = HashMap::new();
    let mut workers = Vec::new();
    for receiver in &config.receivers {
        for (idx, integration) in receiver.integrations().into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
            let ctx = Arc::new(IntegrationCtx {
                receiver: receiver.name.clone(),
                plugin: integration.plugin.clone(),
                config: integration.config.to_string(),
                plugins: plugins.clone(),
                http: http_capability(&settings, &receiver.name, &integration, &plugins)
                    .and_then(|http| per_lane(http, &lanes)),
                smtp: smtp_capability(&integration.config),
                lanes: lanes.clone(),
                settings: settings.clone(),
                log: log.clone(),
                rate: settings.rate_limits.get(&integration.plugin).copied(),
                journal: journal.clone(),
            });
            workers.push(tokio::spawn(worker(ctx, rx)).abort_handle());
            queues.insert((receiver.name.clone(), idx), tx);
        }
    }
    for entry in recovered {
        let key = (entry.receiver.clone(), entry.integration);
        let request = DeliveryRequest {
            receiver: entry.receiver,
            integration: entry.integration,
            notification: entry.notification,
            done: Done::nobody(),
            journal_id: Some(entry.id),
        };
        let sent = queues
            .get(&key)
            .is_some_and(|q| q.try_send(request).is_ok());
        if !sent {
            tracing::error!(receiver = %key.0, integration = key.1, "recovered notification dropped: its integration no longer exists or its queue is full");
            if let Some(j) = &journal {
                j.done(entry.id);
            }
        }
    }
    Ok(NotifyHandle {
        queues: Arc::new(queues),
        log,
        journal,
        workers: Arc::new(workers),
    })
}

/// `http` for each delivery lane, each with its own connection pool (just
/// `http` without lanes).
fn per_lane(
    http: Arc<HttpCapability>,
    lanes: &lanes::Lanes,
) -> Result<Vec<Arc<HttpCapability>>, String> {
    if lanes.len() == 0 {
        return Ok(vec![http]);
    }
    (0..lanes.len())
        .map(|i| {
            http.for_runtime(lanes.handle(i).clone())
                .map(Arc::new)
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .collect()
}

/// Config keys naming where a notifier sends (Alertmanager's `url`,
/// `api_url`, `webhook_url`): their hosts are an integration's allow-list.
const DESTINATION_KEYS: [&str; 3] = ["url", "api_url", "webhook_url"];

/// The `http` capability of one integration: it reaches the hosts of the
/// URLs its config names (or, for a field left out, the plugin's schema
/// default, e.g. PagerDuty's and Opsgenie's public endpoints), its own and
/// `notify.network`'s `allowed_hosts`, at public addresses or inside an
/// `allowed_networks` entry.
fn http_capability(
    settings: &NotifyConfig,
    receiver: &str,
    integration: &Integration,
    plugins: &PluginRegistry,
) -> Result<Arc<HttpCapability>, String> {
    let net = &settings.network;
    let schema: Option<serde_json::Value> = plugins
        .get(&integration.plugin)
        .and_then(|p| serde_json::from_str(&p.info.config_schema).ok());
    let destination_hosts = DESTINATION_KEYS.iter().filter_map(|key| {
        let url = integration.config.get(*key).cloned().or_else(|| {
            schema
                .as_ref()
                .and_then(|s| s.pointer(&format!("/properties/{key}/default")).cloned())
        })?;
        reqwest::Url::parse(url.as_str()?)
            .ok()?
            .host_str()
            .map(str::to_string)
    });
    let hosts: Vec<String> = destination_hosts
        .chain(integration.allowed_hosts.iter().cloned())
        .chain(net.allowed_hosts.iter().cloned())
        .collect();
    let networks = integration
        .allowed_networks
        .iter()
        .chain(&net.allowed_networks)
        .map(String::as_str)
        .map(parse_network)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("allowed_networks: {e}"))?;
    let mut http = HttpCapability::new(
        NetPolicy::new(hosts, networks),
        tokio::runtime::Handle::current(),
    )
    .map_err(|e| {
        tracing::error!(receiver, integration = %integration.plugin, error = %e, "cannot build the notifier HTTP client");
        format!("cannot build the HTTP client: {e}")
    })?;
    http.max_timeout = settings.http_timeout;
    http.max_response_bytes = net.max_response_bytes;
    Ok(Arc::new(http))
}

/// The `smtp` capability of an integration whose config names a `smarthost`
/// (`host:port`, as in Alertmanager's `email_configs`): that smarthost is its
/// whole allow-list. Other integrations get none.
fn smtp_capability(config: &serde_json::Value) -> Option<Arc<SmtpCapability>> {
    let smarthost = config.get("smarthost")?.as_str()?;
    let (host, port) = split_host_port(smarthost)?;
    Some(Arc::new(SmtpCapability::new(
        tokio::runtime::Handle::current(),
        vec![(host.to_string(), port)],
    )))
}

/// `host:port` or `[v6]:port`.
fn split_host_port(hostport: &str) -> Option<(&str, u16)> {
    let (host, port) = hostport.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// A queued request's place: critical first, then oldest first. The
/// request is boxed so the heap's sifts move a pointer, not the notification.
struct Queued {
    rank: Reverse<(u8, u64)>,
    request: Box<DeliveryRequest>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank.cmp(&other.rank)
    }
}

/// Delivery priority from the group's `severity` (lower goes first).
fn priority(n: &Notification) -> u8 {
    let severity = n
        .common_labels
        .get("severity")
        .or_else(|| n.group_labels.get("severity"))
        .map(|s| s.to_ascii_lowercase());
    match severity.as_deref() {
        Some("critical" | "page" | "p1") => 0,
        Some("error" | "high" | "p2") => 1,
        Some("warning" | "p3") => 2,
        _ => 3,
    }
}

/// A token bucket: `burst` tokens, refilled at `per_minute`.
struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        let burst = f64::from(limit.burst.unwrap_or(limit.per_minute).max(1));
        Self {
            tokens: burst,
            burst,
            per_sec: f64::from(limit.per_minute.max(1)) / 60.0,
            at: tokio::time::Instant::now(),
        }
    }

    /// Whole tokens available (after [`Bucket::ready_at`] refilled them).
    fn available(&self) -> usize {
        self.tokens.max(0.0) as usize
    }

    /// When a token is available (now, if one is).
    fn ready_at(&mut self, now: tokio::time::Instant) -> tokio::time::Instant {
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.per_sec).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

async fn worker(ctx: Arc<IntegrationCtx>, mut rx: mpsc::Receiver<DeliveryRequest>) {
    let in_flight = Arc::new(Semaphore::new(ctx.settings.max_in_flight.max(1)));
    let lanes = ctx.lanes.clone();
    let mut queue: BinaryHeap<Queued> = BinaryHeap::new();
    let mut bucket = ctx.rate.map(Bucket::new);
    let mut seq: u64 = 0;
    let mut open = true;
    // Deliveries in flight: aborted with the worker.
    let mut running = tokio::task::JoinSet::new();
    loop {
        let next_at = if queue.is_empty() {
            None
        } else {
            let now = tokio::time::Instant::now();
            Some(bucket.as_mut().map_or(now, |b| b.ready_at(now)))
        };
        if !open && next_at.is_none() {
            while running.join_next().await.is_some() {}
            break;
        }
        tokio::select! {
            biased;
            Some(_) = running.join_next(), if !running.is_empty() => {
                if running.is_empty() && queue.is_empty() {
                    // A burst of deliveries is over: its heap is free.
                    crate::memory::release_after_burst();
                }
            }
            received = rx.recv(), if open => match received {
                Some(request) => {
                    seq += 1;
                    queue.push(Queued { rank: Reverse((priority(&request.notification), seq)), request: Box::new(request) });
                }
                None => open = false,
            },
            _ = sleep_until_opt(next_at) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                // Requests that arrived meanwhile compete on priority too.
                while let Ok(request) = rx.try_recv() {
                    seq += 1;
                    queue.push(Queued { rank: Reverse((priority(&request.notification), seq)), request: Box::new(request) });
                }
                // A backlog leaves in batches (one plugin instance for
                // several notifications) that still keep every delivery
                // slot busy; a short queue leaves one at a time.
                let mut take = batch_size(queue.len(), ctx.settings.max_in_flight);
                if let Some(b) = bucket.as_ref() {
                    take = take.min(b.available().max(1));
                }
                if take > 1 && !ctx.sends_batches() {
                    take = 1;
                }
                let mut batch = Vec::with_capacity(take);
                while batch.len() < take {
                    let Some(Queued { request, .. }) = queue.pop() else {
                        break;
                    };
                    if let Some(b) = bucket.as_mut() {
                        b.take();
                    }
                    batch.push(*request);
                }
                if batch.is_empty() {
                    continue;
                }
                let ctx = ctx.clone();
                let lane = lanes.next();
                let delivery = async move {
                    let lane = lane.unwrap_or(0);
                    if batch.len() == 1 {
                        for request in batch {
                            let delivered = deliver(&ctx, lane, &request.notification).await;
                            finish(&ctx, vec![(request, delivered)]);
                        }
                    } else {
                        deliver_batch(&ctx, lane, batch).await;
                    }
                    drop(permit);
                };
                match lane {
                    Some(lane) => running.spawn_on(delivery, lanes.handle(lane)),
                    None => running.spawn(delivery),
                };
            }
        }
    }
}

/// How many queued notifications one delivery takes: the backlog shared
/// out over the delivery slots, at most [`MAX_BATCH`].
fn batch_size(queued: usize, max_in_flight: usize) -> usize {
    (queued / max_in_flight.max(1)).clamp(1, MAX_BATCH)
}

/// Waits until `at`; returns at once when `at` has passed (a timer would
/// round up to the next millisecond tick and cap the worker at ~1 000
/// deliveries per second); never returns for `None`.
async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) if at <= tokio::time::Instant::now() => {}
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether to try again, and when.
enum Attempt {
    Delivered(String),
    Retry(String, Option<Duration>),
    Permanent(String),
}

async fn deliver(ctx: &IntegrationCtx, lane: usize, notification: &Notification) -> bool {
    deliver_from(ctx, lane, notification, tokio::time::Instant::now(), None).await
}

/// Delivers several notifications, the first attempt in one `send-batch`
/// call; retries go one by one. When the batch call fails (the plugin
/// trapped or ran out of time), the notifications whose outcome the plugin
/// had reported keep it and the others are sent again on their own, so a
/// notification that breaks the plugin fails alone and none that was
/// reported is sent twice. (One cut off in the middle of its request may
/// have arrived and is sent again: delivery is at least once, as after a
/// lone call's timeout.)
///
/// Each notification's outcome is reported ([`finish`]) as soon as it is
/// known: those the batch call settled together, the others (retries,
/// re-sends) each when done, so one retried for minutes holds back no other
/// group.
async fn deliver_batch(ctx: &IntegrationCtx, lane: usize, requests: Vec<DeliveryRequest>) {
    use futures::StreamExt;

    let started = tokio::time::Instant::now();
    let notifications: Vec<&Notification> = requests.iter().map(|r| &r.notification).collect();
    let firsts = attempt_batch(ctx, lane, &notifications).await;
    let mut settled = Vec::new();
    let mut pending = futures::stream::FuturesUnordered::new();
    for (request, first) in requests.into_iter().zip(firsts) {
        // A delivered or permanently failed first attempt is settled here;
        // only the others become futures (each holds a whole delivery's
        // state, kilobytes to build and move).
        let first = match first.map(|f| conclude(ctx, &request.notification, 1, f)) {
            Some(Ok(delivered)) => {
                settled.push((request, delivered));
                continue;
            }
            Some(Err((detail, after))) => Some(Attempt::Retry(detail, after)),
            None => None,
        };
        pending.push(async move {
            let delivered = deliver_from(ctx, lane, &request.notification, started, first).await;
            (request, delivered)
        });
    }
    finish(ctx, settled);
    while let Some(done) = pending.next().await {
        finish(ctx, vec![done]);
    }
}

/// Reports finished deliveries: marked done in the journal (one write) and
/// their outcome sent to whoever queued them.
fn finish(ctx: &IntegrationCtx, done: Vec<(DeliveryRequest, bool)>) {
    if let Some(j) = &ctx.journal {
        let ids: Vec<u64> = done.iter().filter_map(|(r, _)| r.journal_id).collect();
        j.done_many(&ids);
    }
    for (request, delivered) in done {
        request.done.send(delivered);
    }
}

/// Delivers one notification: `first` is the outcome of its first attempt
/// when a batch call made it already.
async fn deliver_from(
    ctx: &IntegrationCtx,
    lane: usize,
    notification: &Notification,
    started: tokio::time::Instant,
    mut first: Option<Attempt>,
) -> bool {
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let outcome = match first.take() {
            Some(outcome) => outcome,
            None => attempt_once(ctx, lane, notification).await,
        };
        let (detail, retry_after) = match conclude(ctx, notification, attempt, outcome) {
            Ok(delivered) => return delivered,
            Err(retry) => retry,
        };
        let backoff = backoff_delay(&ctx.settings, attempt);
        let delay = retry_after.map(|d| d.max(backoff / 2)).unwrap_or(backoff);
        if started.elapsed() + delay > ctx.settings.give_up_after {
            record(ctx, notification, "gave_up", attempt, &detail);
            tracing::error!(receiver = %ctx.receiver, integration = %ctx.plugin, group = %notification.group_key, attempt, error = %detail, "giving up on notification");
            return false;
        }
        record(ctx, notification, "retrying", attempt, &detail);
        tracing::warn!(receiver = %ctx.receiver, integration = %ctx.plugin, attempt, retry_in = ?delay, error = %detail, "notification failed; will retry");
        tokio::time::sleep(delay).await;
    }
}

/// Records an attempt's outcome when it is final: `Ok` with whether the
/// notification was delivered; `Err` with the reason and the delay the
/// remote asked for when it is worth retrying (recorded by the caller,
/// which knows whether it gives up).
fn conclude(
    ctx: &IntegrationCtx,
    notification: &Notification,
    attempt: u32,
    outcome: Attempt,
) -> Result<bool, (String, Option<Duration>)> {
    match outcome {
        Attempt::Delivered(detail) => {
            record(ctx, notification, "delivered", attempt, &detail);
            // Debug, as Alertmanager logs "Notify success": every
            // delivery is in the delivery log (`/api/v1/notifications`).
            tracing::debug!(receiver = %ctx.receiver, integration = %ctx.plugin, group = %notification.group_key, status = %notification.status, alerts = notification.alerts.len(), attempt, "notification delivered");
            Ok(true)
        }
        Attempt::Permanent(detail) => {
            record(ctx, notification, "failed", attempt, &detail);
            tracing::error!(receiver = %ctx.receiver, integration = %ctx.plugin, group = %notification.group_key, attempt, error = %detail, "notification failed permanently");
            Ok(false)
        }
        Attempt::Retry(detail, after) => Err((detail, after)),
    }
}

async fn attempt_once(ctx: &IntegrationCtx, lane: usize, notification: &Notification) -> Attempt {
    let plugin = match ctx.plugins.get_kind(&ctx.plugin, PluginKind::Notifier) {
        Ok(p) => p,
        Err(e) => return Attempt::Permanent(e.to_string()),
    };
    let http = match ctx.http(lane) {
        Ok(http) => http,
        Err(e) => return Attempt::Permanent(e.to_string()),
    };
    http.set_plugin_hosts(&plugin.allowed_hosts);
    let smtp = ctx.smtp.clone();
    let one = [notification];
    let labels = wit::Labels::of(&one);
    let alerts = labels.alerts(&one);
    let wits = labels.notifications(&one, &alerts);
    let result = plugin.send_with(&ctx.config, &wits[0], http, smtp).await;
    match result {
        Ok(outcome) => attempt_of(outcome),
        Err(e @ CallError::Timeout(_)) => Attempt::Retry(format!("notifier {e}"), None),
        Err(e) => Attempt::Permanent(format!("notifier {e}")),
    }
}

/// The first attempt of several notifications in one `send-batch` call:
/// each one's outcome, `None` for those the call did not settle (it failed
/// before the plugin reported them; they are sent again on their own).
async fn attempt_batch(
    ctx: &IntegrationCtx,
    lane: usize,
    notifications: &[&Notification],
) -> Vec<Option<Attempt>> {
    let unsettled = || notifications.iter().map(|_| None).collect();
    let Ok(plugin) = ctx.plugins.get_kind(&ctx.plugin, PluginKind::Notifier) else {
        return unsettled();
    };
    let Ok(http) = ctx.http(lane) else {
        return unsettled();
    };
    http.set_plugin_hosts(&plugin.allowed_hosts);
    let labels = wit::Labels::of(notifications);
    let alerts = labels.alerts(notifications);
    let wits = labels.notifications(notifications, &alerts);
    let outcome = plugin
        .send_batch_with(&ctx.config, &wits, http, ctx.smtp.clone())
        .await;
    if let Some(e) = &outcome.error {
        let settled = outcome.reported.iter().filter(|r| r.is_some()).count();
        tracing::warn!(receiver = %ctx.receiver, integration = %ctx.plugin, notifications = notifications.len(), settled, error = %e, "batch call failed; sending the unsettled notifications on their own");
    }
    outcome
        .reported
        .into_iter()
        .map(|r| r.map(attempt_of))
        .collect()
}

/// What a notifier said about one notification.
fn attempt_of(outcome: Result<types::Delivery, types::DeliveryError>) -> Attempt {
    match outcome {
        Ok(delivery) => Attempt::Delivered(format!(
            "status {}: {}",
            delivery.status_code, delivery.detail
        )),
        Err(types::DeliveryError::Permanent(msg)) => Attempt::Permanent(msg),
        Err(types::DeliveryError::Retryable(r)) => {
            Attempt::Retry(r.reason, r.retry_after_ms.map(Duration::from_millis))
        }
    }
}

/// Exponential backoff with jitter: a random delay in [d/2, d] where
/// d = initial · 2^(attempt-1), capped at max.
fn backoff_delay(settings: &NotifyConfig, attempt: u32) -> Duration {
    let exp = settings
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(settings.max_backoff);
    let jitter: f64 = rand::rng().random_range(0.5..=1.0);
    capped.mul_f64(jitter)
}

fn record(ctx: &IntegrationCtx, n: &Notification, outcome: &str, attempt: u32, detail: &str) {
    let mut log = ctx.log.lock();
    if log.len() == DELIVERY_LOG_CAPACITY {
        log.pop_front();
    }
    log.push_back(DeliveryRecord {
        time: Utc::now(),
        receiver: ctx.receiver.clone(),
        integration: ctx.plugin.clone(),
        group_key: n.group_key.clone(),
        status: n.status.to_string(),
        alerts: n.alerts.len(),
        outcome: outcome.into(),
        attempt,
        detail: detail.into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_reports_once_and_false_when_dropped_unreported() {
        let (tx, rx) = oneshot::channel();
        Done::channel(tx).send(true);
        assert_eq!(rx.blocking_recv(), Ok(true));
        let (tx, rx) = oneshot::channel();
        drop(Done::channel(tx));
        assert_eq!(rx.blocking_recv(), Ok(false));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        Done::new(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .send(false);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        Done::nobody().send(true);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let s = NotifyConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..NotifyConfig::default()
        };
        for attempt in 1..30 {
            let d = backoff_delay(&s, attempt);
            let full = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(Duration::from_secs(1));
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }
}
