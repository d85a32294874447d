#!/usr/bin/env node
// Submit a bettertogether-queue job through the Redis Stream intake, follow its events to the result,
// and print the best candidate. Uses nothing but Redis commands (XADD, GET, XREAD): no Python, no Celery.
//
//   node submit.mjs [job.json] [--submission-id ID] [--redis redis://host:6379/0] [--timeout-s 600]
//                   [--reconnect-budget-s 120]
//
// Exit status, as `btq`'s: 0 succeeded, 1 failed or cancelled, 2 rejected (the field-named error is printed)
// or an unreadable job file, 5 Redis unreachable for longer than the reconnect budget (the first connection
// included; BTQ_REDIS_RECONNECT_BUDGET_S, default 120 s), 6 timed out.
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { createClient } from "redis";

const INTAKE = "btq:intake"; // schemas/keys.py INTAKE
const submissionKey = (id) => `btq:submission:${id}`;
const jobKey = (id, part) => `btq:job:${id}:${part}`;
const TERMINAL = new Set(["job.succeeded", "job.failed", "job.cancelled"]);
const EXIT = { ok: 0, notSucceeded: 1, badInput: 2, unreachable: 5, timeout: 6 };

class ExitError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// The URL as it may be shown: a password becomes *** (the same as `btq` prints).
function redacted(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparseable Redis URL)";
  }
}

function parseArgs(argv) {
  const opts = {
    job: new URL("../demo_job.json", import.meta.url),
    submissionId: `node-${randomUUID()}`,
    redis: process.env.BTQ_REDIS_URL ?? "redis://127.0.0.1:6379/0",
    timeoutS: 600,
    reconnectBudgetS: Number(process.env.BTQ_REDIS_RECONNECT_BUDGET_S ?? 120),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--submission-id") opts.submissionId = argv[++i];
    else if (arg === "--redis") opts.redis = argv[++i];
    else if (arg === "--timeout-s") opts.timeoutS = Number(argv[++i]);
    else if (arg === "--reconnect-budget-s") opts.reconnectBudgetS = Number(argv[++i]);
    else opts.job = arg;
  }
  return opts;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForOutcome(client, submissionId, deadline) {
  while (Date.now() < deadline) {
    const raw = await client.get(submissionKey(submissionId));
    if (raw !== null) return JSON.parse(raw);
    await sleep(200);
  }
  throw new ExitError(EXIT.timeout, `no intake handled submission ${submissionId} in time (is \`btq intake\` running?)`);
}

// A stream entry may have been written by anyone: one that is not an event (no `event` field, not JSON,
// not an object with a string `type`) is skipped with one warning naming the stream and the entry id.
function parseEvent(stream, id, message) {
  let event = null;
  let why = "no 'event' field";
  if (typeof message.event === "string") {
    try {
      event = JSON.parse(message.event);
      why = "not a JSON object with a string 'type'";
    } catch (err) {
      why = `not JSON (${err.message})`;
    }
  }
  if (event !== null && typeof event === "object" && !Array.isArray(event) && typeof event.type === "string") {
    return event;
  }
  console.warn(`warning: skipping malformed entry ${id} of stream ${stream}: ${why}`);
  return null;
}

async function followToEnd(client, jobId, deadline) {
  let cursor = "0-0"; // replay from the start, then block for new events
  while (Date.now() < deadline) {
    const block = Math.max(1, Math.min(1000, deadline - Date.now()));
    const reply = await client.xRead({ key: jobKey(jobId, "events"), id: cursor }, { BLOCK: block, COUNT: 100 });
    for (const stream of reply ?? []) {
      for (const { id, message } of stream.messages) {
        cursor = id;
        const event = parseEvent(jobKey(jobId, "events"), id, message);
        if (event === null) continue;
        const step = event.step_index ?? "";
        const score = event.score ?? "";
        console.log(`event ${event.type} ${step} ${event.strategy ?? ""} ${score}`.trimEnd());
        if (TERMINAL.has(event.type)) return event;
      }
    }
  }
  throw new ExitError(EXIT.timeout, `job ${jobId} did not finish in time`);
}

// Reconnects with capped backoff while Redis is away, and gives up once it has been unreachable for longer
// than the budget (from the first failure, the first connection included): the pending command then fails
// and the client exits 5 with one line instead of retrying forever.
function connectWithin(url, budgetS) {
  let since = null;
  let lastError = null;
  const client = createClient({
    url,
    socket: {
      reconnectStrategy: (retries, cause) => {
        lastError = cause;
        since ??= Date.now();
        if (Date.now() - since > budgetS * 1000) return false; // stop: connect() and pending commands reject
        return Math.min(200 * 2 ** retries, 5000);
      },
    },
  });
  client.on("error", (err) => {
    lastError = err;
    since ??= Date.now();
  });
  client.on("ready", () => {
    since = null;
  });
  const unreachable = () => {
    const why = (lastError?.code === "ECONNREFUSED" ? "connection refused" : lastError?.message) ?? "unreachable";
    return new ExitError(EXIT.unreachable, `cannot reach Redis at ${redacted(url)}: ${why}`);
  };
  return { client, unreachable };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let job;
  try {
    job = readFileSync(opts.job, "utf8");
  } catch (err) {
    throw new ExitError(EXIT.badInput, `cannot use ${opts.job instanceof URL ? opts.job.pathname : opts.job}: ${err.code ?? err.message}`);
  }
  const { client, unreachable } = connectWithin(opts.redis, opts.reconnectBudgetS);
  try {
    await client.connect();
  } catch {
    throw unreachable();
  }
  try {
    return await run(client, opts, job);
  } catch (err) {
    if (!client.isReady && !(err instanceof ExitError)) throw unreachable();
    throw err;
  } finally {
    if (client.isOpen) await client.quit().catch(() => {});
  }
}

async function run(client, opts, job) {
  const deadline = Date.now() + opts.timeoutS * 1000;
  // The whole submission: one stream entry with the job JSON and an id we choose (idempotent retries).
  const entryId = await client.xAdd(INTAKE, "*", { job, submission_id: opts.submissionId });
  console.log(`submitted ${opts.submissionId} as entry ${entryId}`);
  const outcome = await waitForOutcome(client, opts.submissionId, deadline);
  if (outcome.state === "rejected") {
    console.error(`rejected: ${outcome.field ? `${outcome.field}: ` : ""}${outcome.message}`);
    return EXIT.badInput;
  }
  console.log(`accepted as job ${outcome.job_id}`);
  const last = await followToEnd(client, outcome.job_id, deadline);
  const result = JSON.parse(await client.get(jobKey(outcome.job_id, "result")));
  const best = result.best;
  console.log(`result ${result.state}, ${result.candidates.length} candidates`);
  if (best) {
    console.log(`best candidate: strategy "${best.strategy || "baseline"}" score ${best.score} (step ${best.step_index})`);
    console.log(JSON.stringify({ job_id: outcome.job_id, best }));
  }
  return last.type === "job.succeeded" ? EXIT.ok : EXIT.notSucceeded;
}



main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err.message);
    process.exit(err instanceof ExitError ? err.code : EXIT.notSucceeded);
  },
);
