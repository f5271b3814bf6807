import { importShard } from './all.ts';

await importShard(0, 2);
