/** The migrate runbook moved to runbooks/migrate/ (one file per phase): this name stays for existing imports. */
export * from './migrate/index.ts';
