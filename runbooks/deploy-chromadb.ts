/** The deploy runbook moved to runbooks/deploy/ (one file per step): this name stays for existing imports. */
export * from './deploy/index.ts';
