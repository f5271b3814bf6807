import { importShard } from './all.ts';

await importShard(1, 2);
