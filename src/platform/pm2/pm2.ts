// PM2's callback API as promises, for the supervisor and the operator scripts. PM2_HOME must be
// set before this module is first loaded (pm2 reads it at require time).
import pm2 from 'pm2';

export type Pm2Process = pm2.ProcessDescription;

export interface BusPacket {
  readonly event?: string;
  readonly at?: number;
  readonly data?: unknown;
  readonly process: {
    readonly name: string;
    readonly pm_id: number | string;
    readonly status?: string;
    readonly exit_code?: number;
    readonly restart_time?: number;
    readonly pm_uptime?: number;
    readonly unstable_restarts?: number;
    readonly [key: string]: unknown;
  };
}

export interface Bus {
  on(event: string, listener: (packet: BusPacket) => void): void;
  close?(): void;
}

const call = <T>(run: (done: (error: Error | null, result?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => run((error, result) => (error ? reject(error) : resolve(result as T))));

export const connect = (): Promise<void> => call((done) => pm2.connect((error) => done(error ?? null)));
export const disconnect = (): void => pm2.disconnect();
export const list = (): Promise<Pm2Process[]> => call((done) => pm2.list((error, procs) => done(error ?? null, procs)));
export const stop = (target: string | number): Promise<void> =>
  call((done) => pm2.stop(target, (error) => done(error ?? null)));
export const remove = (target: string | number): Promise<void> =>
  call((done) => pm2.delete(target, (error) => done(error ?? null)));
/** A graceful reload of one worker (cluster mode: its replacement is ready before it drains). */
export const reload = (target: string | number): Promise<void> =>
  call((done) => pm2.reload(target, (error) => done(error ?? null)));
/** `{type:'process:msg', topic, data}` to one process, which receives it as an IPC message. */
export const sendData = (pmId: number, topic: string, data: object): Promise<void> =>
  call((done) =>
    pm2.sendDataToProcessId(pmId, { id: pmId, type: 'process:msg', topic, data }, (error) => done(error ?? null)),
  );
/** `pm2 reloadLogs`: every app reopens its log files (after they were renamed by a rotation). */
export const reloadLogs = (): Promise<void> => call((done) => pm2.reloadLogs((error) => done(error ?? null)));
export const killDaemon = (): Promise<void> => call((done) => pm2.killDaemon((error) => done(error ?? null)));
export const launchBus = (): Promise<Bus> =>
  call((done) => pm2.launchBus((error, bus) => done(error ?? null, bus as unknown as Bus)));

type StartFromFile = (
  file: string,
  options: { env: string; updateEnv?: boolean },
  cb: (error: Error | null, procs: Pm2Process[]) => void,
) => void;

/**
 * `pm2 start <file> --env <envName>`: starts the ecosystem's apps (restarting any that exist).
 * The file is loaded in this process, so NODE_ENV should already say the mode.
 */
export const startEcosystem = (file: string, envName: string): Promise<Pm2Process[]> =>
  // @types/pm2 lacks the (file, options, callback) form that pm2.start accepts.
  call((done) => (pm2.start as unknown as StartFromFile)(file, { env: envName }, (e, procs) => done(e ?? null, procs)));

/**
 * `pm2 reload <file> --env <envName> --update-env`: reloads the apps that run (cluster apps
 * without downtime) and starts those that do not, with this process's environment. PM2 7 would
 * still drop that environment on a reload from a file (it replaces each app's env with the file's
 * env_<envName>): ecosystem.config.js therefore puts the environment it is loaded with there.
 */
export const reloadEcosystem = (file: string, envName: string): Promise<Pm2Process[]> =>
  call((done) =>
    (pm2.reload as unknown as StartFromFile)(file, { env: envName, updateEnv: true }, (e, procs) => done(e ?? null, procs)),
  );
