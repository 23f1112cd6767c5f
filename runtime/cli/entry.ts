// Entry of the bundled CLI (dist/xattn.mjs).
import { main } from './main.js';

await main(process.argv);
