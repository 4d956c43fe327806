// Every limit and protocol default in one place (TIGER_STYLE: put a limit on everything).
// Units are last in every name. Shell modules and the CLI read their defaults from here.

/** 2: frames carry the sender's boot id and sequence number (replay protection). */
export const PROTOCOL_VERSION = 2;
/** Sequence numbers below a sender's highest seen by more than this are refused as replays (UDP may reorder). */
export const REPLAY_WINDOW_FRAMES = 64;

/** Largest encoded frame we send or accept; fits one unfragmented datagram on any LAN. */
export const FRAME_BYTES_MAX = 1200;
export const NODE_ID_BYTES_MAX = 64;
export const CLUSTER_BYTES_MAX = 64;
export const PRIORITY_MAX = 1_000_000;
/** Terms and rounds must stay exact in a float64. */
export const COUNTER_MAX = Number.MAX_SAFE_INTEGER;
/** A master's term carries its slot in these low bits (src/core/election/terms.ts). */
export const TERM_SLOT_BITS = 24;
/**
 * Frames with a higher term are ignored: from there an election (term + 1, then up to 2^24 more
 * for the slot) could leave the range a float64 holds exactly. Real clusters stay far below
 * (2^28 elections). Found by the fuzzer: a frame at 2^53 - 1 pushed a node's term past 2^53.
 */
export const TERM_ADOPT_MAX = 2 ** 52;
/** Probes per member per round (a burst; the lowest-delay sample is kept). */
export const PROBES_PER_ROUND_MAX = 32;
/** Timestamps are unsigned 64-bit nanoseconds since the Unix epoch. */
export const TIMESTAMP_NS_MAX = (1n << 63n) - 1n;
/**
 * Largest correction (and offset, delay) a frame may carry: any difference between two valid
 * timestamps, so that a box whose RTC reset to 1970 (or a bad image decades off) is brought onto
 * the cluster's time by its first correction, as chrony's makestep or ntpdate would. Frames carry
 * it as a float64: above 2^53 ns (104 days) it loses sub-microsecond precision (256 ns at 56
 * years), so a first step of decades may be off by a few hundred ns; the next round fixes that.
 * A synchronized clock still refuses anything beyond --max-correction (the panic threshold).
 */
export const CORRECTION_NS_MAX = Number(TIMESTAMP_NS_MAX);

export const PEERS_MAX_DEFAULT = 1024;
/** Static --peer endpoints whose node id we have not learned yet. */
export const STATIC_ENDPOINTS_MAX = 256;
/** A static peer that has not answered yet (not started, or unreachable) is greeted again this often. */
export const STATIC_HELLO_INTERVAL_MS = 1000;
/** Frames queued for sending by the core between two drains. */
export const OUTBOX_FRAMES_MAX = 8192;
/** Events (for logs) queued by the core between two drains. */
export const EVENTS_MAX = 1024;
/**
 * Cluster view (the dashboard of a member that is not master pulls the master's view of every
 * member in pages; see ProtocolNode.requestView). A page holds entries up to this many bytes
 * (estimated per entry as its node id plus a fixed part), and at most this many entries.
 */
export const VIEW_PAGE_BYTES_BUDGET = 900;
export const VIEW_PAGE_ENTRIES_MAX = 64;
/** Per entry besides the node id: flags, offset, delay and last-heard as msgpack numbers. */
export const VIEW_ENTRY_FIXED_BYTES = 32;
/** Pages the master answers per peer per second: a full view of 1024 members fits twice. */
export const VIEW_PAGES_PER_PEER_PER_SECOND = 128;
/**
 * A pull whose next page has not arrived after this is resumed by the next request (the page is
 * asked for again); one that has not completed after VIEW_PULL_TIMEOUT_MS starts over.
 */
export const VIEW_PAGE_RETRY_MS = 200;
export const VIEW_PULL_TIMEOUT_MS = 10_000;
/** A pull that outlived the master's two kept rounds starts over with the latest, at most this often. */
export const VIEW_PULL_RESTARTS_MAX = 3;
/** Members a view may list (the largest --max-peers, plus the master). */
export const VIEW_MEMBERS_MAX = 65_537;
/** Dashboard: offset history points kept per member (5 minutes at the default 1 s poll). */
export const DASHBOARD_HISTORY_POINTS = 300;
/** Dashboard: members with a line in the chart (those of the window; new ones beyond are not drawn). */
export const DASHBOARD_SERIES_MAX = 2048;
/** Dashboard: recent events kept (elections, members joining and leaving). */
export const DASHBOARD_EVENTS_MAX = 200;
/** A non-master pulls the master's view only while its dashboard was read within this. */
export const DASHBOARD_INTEREST_MS = 30_000;
/** Recent elections kept for status. */
export const ELECTION_HISTORY_MAX = 16;

export const UDP_PORT_DEFAULT = 7412;
export const HTTP_PORT_DEFAULT = 7413;
export const CLUSTER_DEFAULT = 'default';
export const PRIORITY_DEFAULT = 100;

export const POLL_INTERVAL_MS_DEFAULT = 1000;
export const POLL_INTERVAL_MS_MIN = 100;
export const POLL_INTERVAL_MS_MAX = 3_600_000;
/** A member that hears nothing from its master for this many poll intervals starts an election. */
export const MASTER_TIMEOUT_POLLS_DEFAULT = 3;
// Probes to a member go out in ping-pong: the next as soon as the previous one is answered, when
// the member's process is awake (on this VM a process woken from idle answers ~100-400 us late),
// or after PROBE_SPACING_MS_DEFAULT at the latest. Measured with 8 agents in namespaces
// (npm run bench): a fixed burst of 4 probes 2 ms apart gave a steady spread p50 440 us, of 8 149 us;
// ping-pong with 8 probes 87 us, with 16 probes 55 us (30-60 us once the frequencies are locked).
export const PROBES_PER_ROUND_DEFAULT = 16;
export const PROBE_SPACING_MS_DEFAULT = 2;
// Early stop: a member's probes stop once at least PROBES_MIN_DEFAULT were sent and the best delay
// of the round is within max(PROBE_GOOD_DELAY_MARGIN_NS, PROBE_GOOD_DELAY_FACTOR x minimum) of the
// member's recent minimum: more probes could only improve the sample by that much (its offset error
// bound is half the delay). Probes are most of a master's work: with 8 members on the 2-core VM
// (scripts/bench/footprint.ts), 1, 4, 8 and 16 probes cost it 6.5, 12.8, 14.8 and 16.8 ms of CPU
// per round. On a quiet network most rounds stop at PROBES_MIN_DEFAULT. Every
// FULL_PROBE_ROUND_EVERY-th round probes in full, so the recent minimum is always that of a full
// burst and cannot creep up through early-stopped rounds.
export const PROBES_MIN_DEFAULT = 4;
export const PROBE_GOOD_DELAY_MARGIN_NS = 5_000;
export const PROBE_GOOD_DELAY_FACTOR = 0.05;
/** Best-probe delays remembered per member, to judge a new sample against the recent minimum. */
export const DELAY_HISTORY_ROUNDS = 8;
/** Every this many rounds the probes of a round are all sent (no early stop); see PROBES_MIN_DEFAULT. */
export const FULL_PROBE_ROUND_EVERY = DELAY_HISTORY_ROUNDS;
/**
 * A round's best sample is discarded when its delay exceeds the recent minimum by this factor plus
 * margin: its offset error bound (half the delay) is then far worse than usual, typically from a
 * process that was descheduled or woke slowly. The member is simply not corrected that round.
 */
export const POOR_DELAY_FACTOR = 1.5;
export const POOR_DELAY_MARGIN_NS = 100_000;
/** After this many rounds in a row without a usable sample, a member's next sample is used anyway. */
export const POOR_SAMPLE_STREAK_MAX = 2;
/** How long the master waits for replies after the last probe of a round. */
export const REPLY_WAIT_MS_DEFAULT = 150;
/** Offsets farther than this from the median are always left out of the average (still corrected). */
export const OUTLIER_THRESHOLD_MS_DEFAULT = 20;
/**
 * Within that, the average takes only offsets within this many median absolute deviations of the
 * median (4 MAD is about 2.7 standard deviations of Gaussian noise), but never fewer than those
 * within OUTLIER_BOUND_NS_MIN: the noise of a LAN round is tens of microseconds.
 */
export const OUTLIER_MAD_FACTOR = 4;
export const OUTLIER_BOUND_NS_MIN = 100_000;

/** Leaderless start: listen this long (jittered) before the first election. */
export const DISCOVERY_WINDOW_MS_DEFAULT = 2500;
export const DISCOVERY_JITTER_FRACTION = 0.2;
/** Chang-Roberts: each hop must be acknowledged within this, else resent once, then skipped. */
export const HOP_ACK_TIMEOUT_MS_DEFAULT = 150;
export const HOP_ATTEMPTS_MAX = 2;
/** A ring election that has not produced a coordinator by then falls back to the bully algorithm. */
export const RING_TIMEOUT_MS_DEFAULT = 1500;
/** Bully: wait this long for an OK from a higher node before declaring victory. */
export const BULLY_ANSWER_TIMEOUT_MS_DEFAULT = 300;
/** Bully: after an OK, wait this long for the coordinator announcement before retrying. */
export const BULLY_COORDINATOR_TIMEOUT_MS_DEFAULT = 1500;
/** Retried elections back off exponentially (with jitter) up to this. */
export const ELECTION_BACKOFF_MS_MAX = 8000;
/** A member that missed rounds (marked suspect) is polled only every this many rounds. */
export const DEAD_PEER_POLL_EVERY_ROUNDS = 8;
/**
 * Silent peers (suspect ones) are greeted by the master every round at first, so that a healed
 * partition is found within a poll interval; after this many greetings without an answer the
 * greetings back off exponentially (from the poll interval, doubling) up to
 * SILENT_PEER_GREET_INTERVAL_MS_MAX, and the peer is no longer polled. An answer resets it.
 */
export const SILENT_PEER_FULL_RATE_GREETINGS = 30;
export const SILENT_PEER_GREET_INTERVAL_MS_MAX = 60_000;
/** Greetings (and polls) to silent peers per round, all of them together: a bounded total rate. */
export const SILENT_PEER_GREETINGS_PER_ROUND_MAX = 64;
/**
 * A peer that never answered (no frame addressed to this node's current run: it may be a forged
 * HELLO with a spoofed source, or an mDNS record of a dead agent) is forgotten after this long.
 * When the peer table is full, the oldest such peer makes room for a newcomer; peers that have
 * answered are never pushed out by silent ones.
 */
export const UNANSWERED_PEER_TTL_MS = 300_000;
/** How often, at most, the peer table is swept for peers to forget (on tick and on admission). */
export const PEER_SWEEP_INTERVAL_MS = 1000;

/**
 * Initial synchronization: the first corrections are stepped whatever their size, because the
 * first measurements of freshly started processes are the noisiest. The clock counts as
 * synchronized (and never steps backwards below the step threshold) after these.
 */
export const INITIAL_STEPS = 3;
/**
 * The provisional window: for this long after its first correction, a clock's time is provisional.
 * A cluster booting after a power cut starts over a minute or so, not at once; while its time is
 * provisional, the master chooses the reference from every clock's time before the corrections it
 * took (its "raw" time, reported in REPLY as provisionalNs), so a pair that met first (one good
 * box, one an hour off, met at the midpoint) does not capture the boxes that boot after it, and
 * the clock steps to the new reference in either direction. After it the clock is locked: it
 * votes, and never steps back. Clocks that join a locked cluster follow it.
 */
export const PROVISIONAL_WINDOW_MS_DEFAULT = 60_000;
/**
 * While its time is provisional, a correction at least this large (or the step threshold, if
 * smaller) is stepped, in either direction: the cluster still forming may move by tens of ms when
 * later boxes change its middle, and slewing that at the slew limit would keep the clocks apart
 * for many seconds. Below it, the loop slews as always.
 */
export const PROVISIONAL_STEP_NS_MIN = 1_000_000;
/**
 * While the cluster forms, it may stand this far outside the band of the raw clocks before it is
 * moved to their middle (see berkeleyRound): within a second of the band is no extreme. Moving a
 * forming cluster for less would churn it (each such move is slewed for seconds), and the wrong
 * clocks worth guarding against (a dead RTC battery, a bad image) are minutes to years off.
 */
export const PROVISIONAL_BAND_SLACK_NS = 1e9;
/**
 * What a REPLY's provisionalNs may carry: the clock's time minus its raw time, both valid
 * timestamps, so any difference of two. A box that stepped 56 years (from 1970) in its window must
 * report that truthfully: the master's cold-start rules (berkeleyRound) judge its raw time from it.
 */
export const PROVISIONAL_NS_MAX = CORRECTION_NS_MAX;
/** Clock discipline defaults. */
export const STEP_THRESHOLD_NS_DEFAULT = 128_000_000; // like ntpd's 128 ms
// Ten times adjtime(3)'s 500 ppm (chrony allows 83333): a millisecond is slewed in 200 ms, so a
// wrong correction does not linger for seconds.
export const SLEW_PPM_MAX_DEFAULT = 5000;
/** --virtual-drift stays where the discipline can compensate it (half its frequency range). */
export const VIRTUAL_DRIFT_PPM_MAX = 250;
/** A virtual clock has no hardware limit; this keeps its frequency plus slew within 10%. */
export const VIRTUAL_CLOCK_PPM_MAX = 100_000;
/**
 * Panic threshold: once synchronized, a correction larger than this is refused and logged as an
 * error (ntpd's panic threshold is 1000 s; a LAN cluster that agreed once has no business
 * jumping by minutes). `--max-correction 0` disables it.
 */
export const CORRECTION_NS_MAX_DEFAULT = 600e9;

// The discipline loop (src/core/sync/discipline.ts): a proportional-integral loop on the
// corrections the master sends. The phase gain applies part of each correction (filtering the
// measurement noise of one round); the frequency gain integrates what is left so that the clock
// runs at the cluster's rate between rounds and through a master's loss.
// Chosen with the simulator (8-32 nodes, 100 us + exp(50 us) one way, drift +-100 ppm, 1 s poll):
// steady spread p50 118 us with no loop (every correction in full, no frequency), 17-26 us at
// 0.5/0.05, 13-19 us at 0.3/0.03, 5-10 us at 0.2/0.01 (with ping-pong probes). The pair is critically
// damped (Ki = (Kp/2)^2); after synchronization both start higher and shrink to these (acquisition,
// see discipline.ts), so the low steady gains do not make the first lock slow.
/** Fraction of each correction applied to the phase once synchronized and locked. */
export const PHASE_GAIN = 0.2;
/** Fraction of each correction's implied rate error added to the frequency estimate, once locked. */
export const FREQUENCY_GAIN = 0.01;
/**
 * Spike suppression: once synchronized, a correction larger than this many times the recent RMS
 * offset (and than SPIKE_NS_MIN) is held for one round unless the next one confirms it.
 */
export const SPIKE_RMS_FACTOR = 4;
export const SPIKE_NS_MIN = 50_000;
/** The frequency estimate never leaves +-this (a quartz is within a few hundred ppm; chrony's maxdrift is 500). */
export const FREQUENCY_PPM_MAX = 500;
/** The frequency loop's input per correction is clamped to the larger of these (one jump of the cluster's time is not a rate). */
export const FREQUENCY_INPUT_NS_MIN = 500_000;
export const FREQUENCY_INPUT_PPM_MAX = 200;
/** Corrections further apart than this say little about frequency (a master was lost, a restart). */
export const FREQUENCY_INTERVAL_MS_MAX = 64_000;
/** ... or than this many poll intervals, whichever is longer (long --poll-interval). */
export const FREQUENCY_INTERVAL_POLLS_MAX = 4;
/** The frequency is written to the state directory at most this often, and when it moved by more than FREQUENCY_SAVE_PPM. */
export const FREQUENCY_SAVE_INTERVAL_MS = 60_000;
export const FREQUENCY_SAVE_PPM = 0.5;
/** The RMS offset in status is an exponentially weighted average over about this many updates' (1/weight). */
export const OFFSET_RMS_WEIGHT = 1 / 16;

/** Decode failures are logged at most this often (the counter still counts every one). */
export const REJECT_LOG_INTERVAL_MS = 10_000;

// Barriers (issue 6): named barriers served by the master (src/core/barrier/).
/** Barrier names: printable ASCII without spaces, like node ids, so byte length = length. */
export const BARRIER_NAME_BYTES_MAX = 64;
/** Waiters in one barrier; an initializer's count above this could never be reached. */
export const BARRIER_WAITERS_MAX = 4096;
/** Open barriers at the master (per cluster). */
export const BARRIERS_OPEN_MAX = 1024;
/** Participants in all open barriers together, at the master (bounds its memory). */
export const BARRIER_PARTICIPANTS_MAX = 65_536;
/** --error CODE: exit codes above 239 are reserved by shells and by our own exit codes. */
export const BARRIER_ERROR_CODE_MAX = 239;
/** Rejection reasons on the wire are short identifiers. */
export const BARRIER_REASON_BYTES_MAX = 32;
/** Request ids in one release or release-ack frame (64 ids of 9 bytes keep a frame far under 1200 bytes). */
export const BARRIER_IDS_PER_FRAME_MAX = 64;
/** Unacknowledged joins, withdraws, releases and notices are resent this often. */
export const BARRIER_RETRY_MS = 200;
/** An acknowledged, counted participant refreshes its join this often (the master's liveness check). */
export const BARRIER_REFRESH_MS = 1000;
/** The master drops a participant not refreshed for this long (its agent died); a later join re-adds it. */
export const BARRIER_MEMBER_EXPIRY_MS = 5000;
/** A release is retransmitted at most this many times; after that the participant's refresh asks again. */
export const BARRIER_RELEASE_ATTEMPTS_MAX = 10;
/** A withdraw is retried at most this many times (it only cleans up after a participant that gave up). */
export const BARRIER_WITHDRAW_ATTEMPTS_MAX = 50;
/**
 * A participant re-registered from a previous master's generation is not released for this long
 * after the new master first hears of that generation: agents that saw the old master release it
 * have this long to say so (barrierReleased), before it is merged with newer participants.
 */
export const BARRIER_TAKEOVER_SETTLE_MS = 3000;
/** Released participants remembered by the master, to answer a late or repeated join with the release. */
export const BARRIER_RELEASED_REMEMBERED_MAX = 65_536;
export const BARRIER_RELEASED_MEMORY_MS = 60_000;
/** Released generations remembered by the master (one entry per release: cheap, so kept longer). */
export const BARRIER_GENERATIONS_REMEMBERED_MAX = 4096;
export const BARRIER_GENERATION_MEMORY_MS = 600_000;
/** Withdrawn or refused participants remembered, so that a stale duplicate join cannot add them back. */
export const BARRIER_REFUSED_REMEMBERED_MAX = 65_536;
export const BARRIER_REFUSED_MEMORY_MS = 60_000;
/** The master's expiry and memory sweep runs this often. */
export const BARRIER_SWEEP_MS = 500;
/** Frames the barrier table or client queues between two drains. */
export const BARRIER_OUTBOX_FRAMES_MAX = 16_384;
/** Participants (pending or withdrawing) one agent keeps. */
export const BARRIER_CLIENT_PARTICIPANTS_MAX = 4096;
/** Participants blocked in one agent's control server at once (each holds an HTTP connection). */
export const BARRIER_LOCAL_WAITERS_MAX = 1024;
/** Connections the control server accepts: every local barrier waiter holds one, plus room for status and scrapes. */
export const CONTROL_CONNECTIONS_MAX = BARRIER_LOCAL_WAITERS_MAX + 64;
/** Largest request body the control server reads (POST /barrier). */
export const CONTROL_BODY_BYTES_MAX = 4096;
/** Largest answer the CLI reads from a control server (a status of PEERS_MAX_DEFAULT peers is ~0.5 MB). */
export const CONTROL_RESPONSE_BYTES_MAX = 16 * 1024 * 1024;
/** At most one answer per this interval to greetings that carry our own node id (a duplicate --node-id). */
export const DUPLICATE_ID_ANSWER_INTERVAL_MS = 5000;
/**
 * Answers to stale frames (a HELLO or COORDINATOR telling the sender our term and master) go to
 * one endpoint at most this often. Two members that each still follow the other's master (one of
 * them gone) would otherwise bounce notices off a third master without end until their master
 * timeouts, and duplicated datagrams multiply such a loop (found by the simulator: crash seed 4382
 * never advanced its clock). The notice is a shortcut; the master timeout settles it anyway.
 */
export const STALE_NOTICE_INTERVAL_MS = 100;
/** How long `status` waits on a member for the master's view of the cluster (pulled on demand). */
export const STATUS_VIEW_WAIT_MS_MAX = 3000;
/** Poll intervals without a correction before the status verdict says "holdover" (tracking.holdover says so after 2). */
export const VERDICT_HOLDOVER_POLLS = 4;
/** How often `waitsync` asks the agent (its --interval default), seconds. */
export const WAITSYNC_INTERVAL_S_DEFAULT = 1;
/** A participant the master has not acknowledged by then gets exit 76 (the cluster cannot be reached). */
export const BARRIER_REGISTER_TIMEOUT_MS = 30_000;
/** Longest --timeout the barrier command accepts: one week. */
export const BARRIER_TIMEOUT_MS_MAX = 7 * 24 * 3600 * 1000;
/** Releases an agent remembers to tell a new master about, and for how long. */
export const BARRIER_NOTICES_MAX = 256;
export const BARRIER_NOTICE_MEMORY_MS = 60_000;

/** Draws of a new random barrier generation before the random source is declared broken (53 bits each: a collision is rare). */
export const BARRIER_GENERATION_DRAWS_MAX = 1000;

// Synchronized release (issue 19): the master releases a generation at an instant on its clock,
// BARRIER_SYNC_MARGIN past the last arrival, so that the release frame reaches every participant's
// agent, and the agent's answer reaches the waiting command, before the instant.
/** The margin covers this many times the slowest participant agent's recent round trip (a one-way
 *  trip is about half of one: 4x leaves 8x the one-way delay, room for the p99 tail of a loaded LAN). */
export const BARRIER_SYNC_DELAY_FACTOR = 4;
/** Plus this floor: the local hop (agent -> HTTP answer -> the waiting command) and process
 *  scheduling. 0.3-2 ms on an idle host, but with 5 ms most releases arrived late on this 2-core
 *  machine at load 15-20 (bench:barrier-sync); 20 ms is still nothing next to an experiment's phase. */
export const BARRIER_SYNC_MARGIN_FLOOR_NS = 20_000_000;
/** A participant agent the master has not measured yet (no delay history): assume this round trip. */
export const BARRIER_SYNC_DELAY_UNKNOWN_NS = 5_000_000;
/** The margin never exceeds this (a pathological delay sample must not postpone a start for long). */
export const BARRIER_SYNC_MARGIN_MAX_NS = 1_000_000_000;
/** A participant's command never waits for an instant further ahead than this (a wrong clock or a
 *  hostile master must not park it for days); `at` refuses TIMEs further ahead with exit 2. */
export const SYNC_START_WAIT_NS_MAX = 7 * 24 * 3600 * 1_000_000_000;
/** The waiter sleeps on a Node timer until this long before the instant (timers wake several ms
 *  late on a loaded host: 3-6 ms measured at load 15 on 2 cores), then in the kernel to the instant
 *  (clock_nanosleep, TIMER_ABSTIME; src/cli/sync-start.ts), spinning on the host clock for that
 *  stretch only where the binding is missing. */
export const SYNC_START_SPIN_NS = 10_000_000;

// ---------------------------------------------------------------------------------------------
// The shells (src/net, src/clock, src/daemon, src/cli): timeouts, intervals and bounds of the
// parts around the core. Not protocol: changing one changes no frame.

/** mDNS: a PTR query goes out this often (jittered +-10 %), so late joiners and healed partitions are found. */
export const MDNS_QUERY_INTERVAL_MS_DEFAULT = 5000;
export const MDNS_QUERY_INTERVAL_MS_MIN = 100;
/** mDNS: stop() gives the goodbye and the socket close this long before resolving anyway. */
export const MDNS_STOP_TIMEOUT_MS = 1000;
/** mDNS: each warning (peer limit, foreign duplicates of our id, send errors) at most this often... */
export const MDNS_WARN_LOG_INTERVAL_MS = 10_000;
/** ... with its rate limited per kind and node id, at most this many tracked at once. */
export const MDNS_WARN_KEYS_MAX = 256;
/** mDNS: questions of one legacy unicast query looked at (a query is a few; more is not a real client). */
export const MDNS_LEGACY_QUESTIONS_MAX = 8;
/** mDNS: the protocol version a TXT record may announce (`pv`, 16 bits). */
export const MDNS_PROTOCOL_VERSION_MAX = 0xffff;

/** Host clock (src/clock/host.ts): the anchor is checked for a step of the system clock this often... */
export const HOST_STEP_CHECK_INTERVAL_NS = 1_000_000_000n;
/** ... and re-anchored when realtime and hrtime disagree by more than this. */
export const HOST_STEP_TOLERANCE_MS = 5;
/**
 * Host clock: millisecond edges sampled per anchoring (the one bracketed most tightly wins): at
 * least the minimum, and more until one is bracketed within HOST_ANCHOR_WIDTH_GOOD_NS or the
 * maximum is spent.
 */
export const HOST_ANCHOR_EDGES_MIN = 5;
export const HOST_ANCHOR_EDGES_MAX = 100;
export const HOST_ANCHOR_WIDTH_GOOD_NS = 2000n;
/** Host clock refine(): the recent checks kept, and the smallest error worth moving the anchor for. */
export const HOST_ANCHOR_CHECKS_KEPT = 8;
export const HOST_ANCHOR_MOVE_NS_MIN = 1000;
/** How often the daemon checks the host clock's anchor with refine() (~1 ms of spinning per check). */
export const HOST_ANCHOR_REFINE_INTERVAL_MS = 5000;
/**
 * Virtual clock over CLOCK_MONOTONIC_RAW: (host, RAW, host) readings taken to anchor RAW to the
 * host's realtime at start; the most tightly bracketed one wins (a preempted one loses).
 */
export const VIRTUAL_BASE_ANCHOR_READS = 16;
/** ... and the same pairing later (an arrival stamp, hostOffsetNs), tightest of this many. */
export const VIRTUAL_BASE_PAIR_READS = 4;

/** Kernel clock: a slew timer that fires earlier than this before the planned end is re-armed for the rest. */
export const KERNEL_SLEW_END_EARLY_MS = 1;
/** Kernel clock: after a failed write that should have ended a slew, try again this soon (the slew keeps running). */
export const KERNEL_SLEW_END_RETRY_MS = 1_000;
/** A kernel receive stamp older than this is not the datagram in hand (or the clock was stepped): not used. */
export const RX_STAMP_LATENCY_NS_MAX = 1_000_000_000;

/** Keys in one --key-file: enough for any rotation, and a bound on what a file can make us hold. */
export const KEYS_PER_FILE_MAX = 64;
export const KEY_FILE_BYTES_MAX = 64 * 1024;
/** A --config file larger than this is not a config file. */
export const CONFIG_FILE_BYTES_MAX = 64 * 1024;

/** How long a graceful stop waits for its LEAVE frames to leave the socket. */
export const LEAVE_FLUSH_TIMEOUT_MS = 200;
/** A graceful stop that has not finished by then is cut short (the slew is still ended on exit). */
export const AGENT_STOP_TIMEOUT_MS = 5000;
/** After a crash, the LEAVE frames get this long to go out. */
export const CRASH_STOP_TIMEOUT_MS = 1000;

/** `status` and `waitsync`: how long one status request may take. */
export const STATUS_REQUEST_TIMEOUT_MS = 3000;
/** `barrier`: how long after --timeout the command gives up on an agent that has not answered. */
export const BARRIER_ANSWER_GRACE_MS = 5000;
/** `demo`: the agents count as converged once their clocks are within this of each other. */
export const DEMO_CONVERGED_SPREAD_NS = 1e6;

// ---------------------------------------------------------------------------------------------
// NTP server (issue 17): src/ntp/, src/net/ntp-server.ts, src/core/sync/error-bound.ts.
// ---------------------------------------------------------------------------------------------
/** The well-known NTP port, the default of --ntp-port where the agent can bind it (0 disables). */
export const NTP_PORT_DEFAULT = 123;
/**
 * Stratum of a synchronized master that has no upstream (members say one more). 10 is ntpd's
 * customary orphan stratum (`tos orphan 10`) and chrony's `local stratum` default: a client that
 * also has real servers (stratum 1-4) prefers them, and the cluster's internal time still counts
 * as valid (below 16).
 */
export const NTP_LOCAL_STRATUM_DEFAULT = 10;
/** Largest stratum we announce while synchronized (16 means unsynchronized in NTP). */
export const NTP_STRATUM_MAX = 15;
/**
 * Precision announced in replies, log2 s: 2^-20 s is about 1 us, what reading the clock costs
 * Node here (process.hrtime plus a bigint; a kernel clock_gettime alone is ~20-50 ns).
 */
export const NTP_PRECISION_LOG2_DEFAULT = -20;
/**
 * Per-client rate limit, like chrony's `ratelimit interval 1 burst 16 leak 2`: on average one
 * reply per 2^1 s per client address, bursts of up to 16, and one request in 2^2 over the limit
 * answered anyway (so that a client whose address is spoofed by a flooder still gets some
 * answers). Replies are never larger than requests, so the limit is about reflection volume and
 * CPU, not amplification.
 */
export const NTP_RATE_INTERVAL_MS_DEFAULT = 2000;
export const NTP_RATE_BURST_DEFAULT = 16;
export const NTP_RATE_LEAK_LOG2_DEFAULT = 2;
/**
 * Client addresses the rate limiter remembers. When full, the one heard from least recently is
 * forgotten (and would start again with a full burst): 4096 entries of ~100 bytes.
 */
export const NTP_RATE_CLIENTS_MAX = 4096;
/**
 * Frequency tolerance of the error bound (src/core/sync/error-bound.ts): how fast, at most, this
 * clock and the master's drift apart after a correction, ppm. NTP's PHI is 15 ppm (RFC 5905), the
 * worst frequency error it assumes of a disciplined clock. Ours is disciplined every poll interval
 * (1 s by default) with a frequency loop that locks to well under 1 ppm in steady state, but
 * temperature steps, a fresh start (frequency not learned yet, --virtual-drift up to 250 ppm) and
 * a lost master can leave several ppm, so we keep NTP's 15: at a 1 s poll it adds 15 us.
 */
export const ERROR_BOUND_FREQUENCY_TOLERANCE_PPM = 15;
/** What a CORRECT's boundNs may carry: a measured offset and an average of up to CORRECTION_NS_MAX each, and more. */
export const ERROR_BOUND_NS_MAX = 4 * CORRECTION_NS_MAX;

// ---------------------------------------------------------------------------------------------
// NTP client, following upstream servers (issue 18): src/ntp/client.ts, src/ntp/selection.ts,
// src/ntp/upstream-address.ts, src/net/ntp-client.ts.
// ---------------------------------------------------------------------------------------------
/** --upstream may be given at most this many times (ntpd and chrony are happy with 4-8 servers; selection needs 3+ to outvote one falseticker). */
export const UPSTREAMS_MAX = 8;
/**
 * Steady poll interval of an upstream: default 16 s (chrony's and ntpd's minpoll 4, the usual LAN
 * setting; public servers' default rate limits, chrony's 8 s and ntpd's `discard average 3`, let it
 * through), bounds 1 s (a LAN server of our own) to 1024 s (ntpd's default maxpoll).
 */
export const UPSTREAM_POLL_INTERVAL_MS_DEFAULT = 16_000;
export const UPSTREAM_POLL_INTERVAL_MS_MIN = 1_000;
export const UPSTREAM_POLL_INTERVAL_MS_MAX = 1_024_000;
/**
 * The burst sent while a server is not reachable (at start, and after its reach register emptied),
 * like ntpd's and chrony's iburst: this many requests this far apart, so that the filter has
 * samples within seconds instead of poll intervals.
 */
export const UPSTREAM_BURST_REQUESTS = 6;
export const UPSTREAM_BURST_INTERVAL_MS = 2_000;
/** Requests in a burst: at least 1, at most 8 (the reach register's width). */
export const UPSTREAM_BURST_REQUESTS_MAX = 8;
/** Samples kept per server by the clock filter (RFC 5905's eight-stage shift register). */
export const UPSTREAM_FILTER_SAMPLES = 8;
/**
 * A server whose root distance (delay / 2 + dispersion, all the way to its reference clock) is
 * beyond this is not a candidate: RFC 5905's MAXDIST, 1.5 s (chrony's maxdistance is 3 s).
 */
export const UPSTREAM_ROOT_DISTANCE_NS_MAX = 1.5e9;
/** Largest stratum a server may announce to be followed (16 and 0 mean unsynchronized). */
export const UPSTREAM_STRATUM_MAX = 15;
/**
 * Kiss code RATE: the poll interval doubles at each one, up to this, and stays there (RFC 5905
 * section 7.4: reduce the rate, and again at each further RATE; a server that asked is not pushed again).
 */
export const UPSTREAM_RATE_BACKOFF_MS_MAX = UPSTREAM_POLL_INTERVAL_MS_MAX;
/** A host name that did not resolve is tried again after this long. */
export const UPSTREAM_RESOLVE_RETRY_MS = 30_000;
/** Precision of our own clock readings, s: 2^-20 (about 1 us), as NTP_PRECISION_LOG2_DEFAULT. */
export const UPSTREAM_LOCAL_PRECISION_NS = 2 ** NTP_PRECISION_LOG2_DEFAULT * 1e9;

// ---------------------------------------------------------------------------------------------
// Following an upstream (issue 18): the clock class in the election key and its hysteresis
// (src/core/upstream/health.ts), the master's steering (src/core/upstream/reference.ts).
// ---------------------------------------------------------------------------------------------
/** Clock classes, the election key's leading field (higher wins): no healthy upstream, and one. */
export const CLOCK_CLASS_CLUSTER = 0;
export const CLOCK_CLASS_UPSTREAM = 1;
/** Largest clock class a frame may carry (room for finer classes later, as PTP's clockClass has). */
export const CLOCK_CLASS_MAX = 255;
/** Usable estimates in a row before an upstream counts as healthy (with the client's burst: seconds). */
export const UPSTREAM_HEALTHY_SAMPLES = 3;
/**
 * A healthy upstream is lost when no usable estimate came for this many of its poll intervals
 * (the client marks a server unreachable only after 8 silent requests; a majority lost, or a
 * falseticker vote, ends estimates at once).
 */
export const UPSTREAM_LOST_AFTER_POLLS = 4;
/** ... but never sooner than this (a short poll interval must not make the class flap). */
export const UPSTREAM_LOST_AFTER_MS_MIN = 30_000;
/**
 * Route-flap damping for the class: after a loss, an upstream counts as healthy again only once
 * it has been usable for a hold-down that starts here and doubles with every further loss within
 * UPSTREAM_FLAP_WINDOW_MS, up to UPSTREAM_HOLDDOWN_MS_MAX. Each class change moves the master, so
 * a flapping upstream moves it at most once per hold-down.
 */
export const UPSTREAM_HOLDDOWN_MS = 60_000;
export const UPSTREAM_HOLDDOWN_MS_MAX = 30 * 60_000;
export const UPSTREAM_FLAP_WINDOW_MS = 60 * 60_000;
/**
 * The master steers on the system peer's new samples, once a poll. If the system peer falls
 * silent while it stays selected (its reach empties over 8 polls), the newest sample of another
 * truechimer is steered on once this many poll intervals passed without a correction.
 */
export const UPSTREAM_STEER_STALL_POLLS = 2;
/**
 * The discipline reads no rate out of an upstream correction that came less than this share of
 * the expected spacing of samples (the poll interval, or the burst's interval) after the previous
 * one: what is left then is the phase the loop chose to leave, not drift, and dividing it by a
 * short interval would throw the frequency by hundreds of ppm.
 */
export const UPSTREAM_RATE_INTERVAL_SHARE_MIN = 0.5;
/** Losses remembered for the damping (older than the window are dropped anyway). */
export const UPSTREAM_FLAPS_KEPT = 16;
