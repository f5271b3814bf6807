/** `deploy --plan` moved to runbooks/deploy/plan.ts: this name stays for existing imports. */
export * from './deploy/plan.ts';
