// Password hashing on a few dedicated threads, behind a bounded queue.
//
// Why our own threads and not libuv's pool (where the package's async API and crypto.scrypt run):
// each hash takes 16–19 MiB, and glibc keeps that memory in the arena of whichever thread ran
// it, so spread over libuv's four threads it costs 64 MiB or more per process for good
// (measured with scrypt), and it competes with file and DNS work. On our own threads it costs
// one arena each, and the number of threads bounds the concurrency.
//
// Why a bound on the queue: every waiting job is a login or registration that waits for all
// those ahead of it. Unbounded, a few clients registering in a loop make every login wait longer
// and longer; bounded, the excess is refused at once (HashQueueFullError, answered 503).
import { Worker } from 'node:worker_threads';
import type { ApiCounters } from '../metrics/counters';
import { NamedError } from '../../platform/util/errors';

/** argon2id with these costs; `$argon2id$v=19$m=…,t=…,p=…$salt$hash` (PHC string). */
export interface Argon2idHashJob {
  readonly kind: 'argon2id-hash';
  readonly password: string;
  /** KiB of memory. */
  readonly memoryCost: number;
  /** Passes over the memory. */
  readonly timeCost: number;
  readonly parallelism: number;
}

/** Checks a password against an argon2 PHC string, with the costs it names. */
export interface Argon2VerifyJob {
  readonly kind: 'argon2-verify';
  readonly password: string;
  readonly stored: string;
}

/** The raw scrypt key: only to verify hashes stored before argon2id. */
export interface ScryptJob {
  readonly kind: 'scrypt';
  readonly password: string;
  readonly salt: Buffer;
  readonly keyLength: number;
  readonly n: number;
  readonly r: number;
  readonly p: number;
}

export type HashJob = Argon2idHashJob | Argon2VerifyJob | ScryptJob;

/** What each kind of job resolves with. */
export type HashResult<J extends HashJob> = J extends Argon2idHashJob ? string : J extends Argon2VerifyJob ? boolean : Buffer;

/** Every thread is busy and `limit` jobs already wait: refused at once instead of queued. */
export class HashQueueFullError extends NamedError {
  constructor(readonly limit: number) {
    super(`Password hash queue full (${limit} waiting)`);
  }
}

/** The pool was closed: no more jobs are taken, and jobs that were waiting fail. */
export class HashPoolClosedError extends NamedError {
  constructor() {
    super('Password hash pool closed');
  }
}

// Plain JavaScript evaluated in the thread: no file to find, in dist/ or under tsx alike. The
// argon2 binding's path is resolved here and handed over, since an evaluated script resolves
// modules from the working directory, which need not be the project's.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
const argon2 = require(workerData.argon2Path);
const ARGON2ID = 2; // Algorithm.Argon2id, a const enum in the package's types
const VERSION_0X13 = 1; // Version.V0x13, likewise
function run(job) {
  switch (job.kind) {
    case 'argon2id-hash':
      return argon2.hashSync(job.password, {
        algorithm: ARGON2ID, version: VERSION_0X13,
        memoryCost: job.memoryCost, timeCost: job.timeCost, parallelism: job.parallelism,
      });
    case 'argon2-verify':
      return argon2.verifySync(job.stored, job.password);
    case 'scrypt':
      return scryptSync(job.password, Buffer.from(job.salt), job.keyLength,
        { N: job.n, r: job.r, p: job.p, maxmem: 256 * job.n * job.r + 1048576 });
    default:
      throw new Error('unknown job kind');
  }
}
parentPort.on('message', (job) => {
  try {
    parentPort.postMessage({ ok: true, result: run(job) });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) });
  }
});
`;

type ThreadMessage = { ok: true; result: string | boolean | Uint8Array } | { ok: false; error: string };

interface Pending {
  readonly job: HashJob;
  readonly resolve: (result: string | boolean | Uint8Array) => void;
  readonly reject: (error: Error) => void;
}

class HashThread {
  /** Undefined after the thread died: the next job starts a new one (not at once, so a thread that cannot start does not spin). */
  private worker: Worker | undefined;
  private closing = false;
  current: Pending | undefined;

  constructor(
    private readonly argon2Path: string,
    private readonly onIdle: (thread: HashThread) => void,
  ) {
    this.worker = this.spawn();
  }

  run(task: Pending): void {
    this.current = task;
    this.worker ??= this.spawn();
    this.worker.postMessage(task.job);
  }

  /** Ends the thread for good; a job still running on it fails. */
  close(): void {
    this.closing = true;
    void this.worker?.terminate();
  }

  private spawn(): Worker {
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { argon2Path: this.argon2Path },
      // The hash memory is native; the thread's own JavaScript needs little.
      resourceLimits: { maxOldGenerationSizeMb: 16 },
    });
    // Idle threads must not keep a draining process alive.
    worker.unref();
    worker.on('message', (message: ThreadMessage) => {
      const task = this.finish();
      if (message.ok) task?.resolve(message.result);
      else task?.reject(new Error(`password hashing failed: ${message.error}`));
    });
    // A thread that died (it should not) is replaced at the next job; its job fails rather than hangs.
    // Cleared first, so that next job goes to a new thread; a dead thread's later events are ignored.
    const died = (error: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.finish()?.reject(error);
    };
    worker.on('error', died);
    worker.on('exit', () => died(new Error('password hash thread exited')));
    return worker;
  }

  private finish(): Pending | undefined {
    const task = this.current;
    this.current = undefined;
    if (task && !this.closing) this.onIdle(this);
    return task;
  }
}

export interface HashPoolOptions {
  /** Threads, so hashes computed at once (at least 1). */
  readonly concurrency: number;
  /** Jobs allowed to wait for a thread; one more is refused with HashQueueFullError. */
  readonly queueLimit: number;
  /** Counts each job refused for a full queue. */
  readonly counters: Pick<ApiCounters, 'passwordHashRejections'>;
}

export class HashPool {
  private readonly threads: HashThread[] = [];
  private readonly idle: HashThread[] = [];
  private readonly queue: Pending[] = [];
  private readonly concurrency: number;
  private readonly queueLimit: number;
  private readonly counters: HashPoolOptions['counters'];
  private closed = false;

  constructor(options: HashPoolOptions) {
    this.counters = options.counters;
    this.concurrency = Math.max(1, Math.floor(options.concurrency));
    this.queueLimit = Math.max(0, Math.floor(options.queueLimit));
  }

  /** Jobs being hashed now and jobs waiting for a thread. */
  get load(): { readonly running: number; readonly waiting: number } {
    return { running: this.threads.length - this.idle.length, waiting: this.queue.length };
  }

  run<J extends HashJob>(job: J): Promise<HashResult<J>> {
    if (this.closed) return Promise.reject(new HashPoolClosedError());
    // Threads start at the first job: a process that never sees a login or registration starts none.
    if (this.threads.length === 0) this.startThreads();
    const thread = this.idle.pop();
    if (!thread && this.queue.length >= this.queueLimit) {
      this.counters.passwordHashRejections.inc({ operation: job.kind === 'argon2id-hash' ? 'hash' : 'verify' });
      return Promise.reject(new HashQueueFullError(this.queueLimit));
    }
    return new Promise<HashResult<J>>((resolve, reject) => {
      // The thread answers with the type of result the job's kind asks for (see THREAD_SOURCE).
      const task: Pending = { job, resolve: resolve as (result: string | boolean | Uint8Array) => void, reject };
      if (thread) thread.run(task);
      else this.queue.push(task);
    }).then((result) => (result instanceof Uint8Array ? (Buffer.from(result) as HashResult<J>) : result));
  }

  /** Ends every thread; running and waiting jobs fail, later ones are refused. */
  close(): void {
    this.closed = true;
    for (const thread of this.threads) thread.close();
    for (const task of this.queue.splice(0)) task.reject(new HashPoolClosedError());
  }

  private startThreads(): void {
    const argon2Path = require.resolve('@node-rs/argon2');
    for (let i = 0; i < this.concurrency; i++) this.threads.push(new HashThread(argon2Path, (thread) => this.next(thread)));
    this.idle.push(...this.threads);
  }

  private next(thread: HashThread): void {
    const task = this.queue.shift();
    if (task) thread.run(task);
    else this.idle.push(thread);
  }
}
