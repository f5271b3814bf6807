/** `migrate --plan` moved to runbooks/migrate/plan.ts: this name stays for existing imports. */
export * from './migrate/plan.ts';
