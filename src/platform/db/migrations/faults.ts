// For tests and drills only (FAULT_INJECTION=1 with FAULT_FAILING_MIGRATION=1): a migration that
// always fails, to show that a failed migration stops start-up and leaves the schema usable.
import type { Migration } from './index';

export const failingMigration: Readonly<Migration> = {
  name: '900-fault-injected-failure',
  async up(connection) {
    // One ALTER naming the same column twice: refused whole, so the table stays as it was.
    await connection.query(
      'ALTER TABLE users ADD COLUMN fault_injected INT NULL, ADD COLUMN fault_injected INT NULL',
    );
  },
  async down() {
    // Nothing was ever applied.
  },
};
