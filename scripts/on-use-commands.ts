/**
 * Command actions loaded on use: migrate's and the gate's chromadb and Qdrant clients weigh
 * ~45 MB of memory that deploy and rollback never need. (Kept apart from chroma-ferry.ts: tsx
 * scans files holding a dynamic import() with a lexer that some of that file's regexes confuse.)
 */
function onUse<K extends string>(load: () => Promise<Record<K, (...args: never[]) => Promise<void>>>, name: K) {
  return async (...args: unknown[]): Promise<void> => {
    const action = (await load())[name] as (...a: unknown[]) => Promise<void>;
    await action(...args);
  };
}

export const migrateAction = onUse(() => import('./migrate-command.ts'), 'migrateCommand');
export const validateAction = onUse(() => import('./gate-commands.ts'), 'validateCommand');
export const restoreAction = onUse(() => import('./gate-commands.ts'), 'restoreCommand');
