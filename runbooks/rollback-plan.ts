/** `rollback --plan` moved to runbooks/rollback/plan.ts: this name stays for existing imports. */
export * from './rollback/plan.ts';
