#!/usr/bin/env node
// Entry point of the `chroma-ferry` bin: loads the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../scripts/chroma-ferry.ts');
