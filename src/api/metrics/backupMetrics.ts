// The backups as metrics, read from the backup folder at scrape time (platform/backups/status.ts), so any
// api worker answers for the one-shot backup job that took them. They live in a registry of their
// own beside the cluster's merge (metrics/start.ts): one worker reads the folder per scrape.
import type { Registry } from 'prom-client';
import { BACKUP_KINDS, type BackupView, readBackupView } from '../../platform/backups/status';
import { type CustomMetric, registerCustom } from '../../platform/metrics/lazyHistogram';

type Sample = { readonly value: number; readonly labels: Record<string, string> };

export function registerBackupMetrics(registry: Registry, backup: { readonly dir: string; readonly database: string }): void {
  // One folder read serves all the backup metrics of a scrape: the registry asks them all at once.
  let reading: Promise<BackupView> | undefined;
  const view = (): Promise<BackupView> => {
    reading ??= readBackupView(backup.dir, backup.database).finally(() => {
      reading = undefined;
    });
    return reading;
  };
  const metric = (name: string, help: string, type: 'counter' | 'gauge', read: (view: BackupView) => Sample[]): void => {
    const described = { name, help, type };
    // prom-client's registry awaits get(); CustomMetric types the synchronous form.
    const get = async () => ({ ...described, values: read(await view()) });
    registerCustom(registry, { ...described, get } as unknown as CustomMetric);
  };
  const byKind = (value: (kind: (typeof BACKUP_KINDS)[number], v: BackupView) => number | undefined) => (v: BackupView): Sample[] =>
    BACKUP_KINDS.flatMap((kind) => {
      const found = value(kind, v);
      return found === undefined ? [] : [{ value: found, labels: { kind } }];
    });

  metric(
    'resilient_api_backup_last_success_timestamp_seconds',
    'When the snapshot of the newest backup in BACKUP_DIR was taken, by kind (scheduled, predeploy); 0 when there is none',
    'gauge',
    byKind((kind, v) => v.newest[kind]?.takenAtSeconds ?? 0),
  );
  metric(
    'resilient_api_backup_last_success_size_bytes',
    'Compressed size of the newest backup in BACKUP_DIR, by kind; absent when there is none',
    'gauge',
    byKind((kind, v) => v.newest[kind]?.bytes),
  );
  metric(
    'resilient_api_backup_last_success_duration_seconds',
    'How long the run that wrote the newest backup took, by kind; absent when not recorded',
    'gauge',
    byKind((kind, v) => v.newest[kind]?.durationSeconds),
  );
  metric(
    'resilient_api_backup_failures_total',
    'Backup runs that failed, as recorded in BACKUP_DIR by the backup job',
    'counter',
    (v) => [{ value: v.failures, labels: {} }],
  );
  metric(
    'resilient_api_backup_last_failure_timestamp_seconds',
    'When the last backup run failed; 0 when none has',
    'gauge',
    (v) => [{ value: v.lastFailureAtSeconds ?? 0, labels: {} }],
  );
}
