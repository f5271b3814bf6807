/** The rollback runbook moved to runbooks/rollback/ (one file per step): this name stays for existing imports. */
export * from './rollback/index.ts';
