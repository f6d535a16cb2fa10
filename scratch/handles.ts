import { after } from 'node:test';
after(() => { setTimeout(() => { console.error('HANDLES', process.getActiveResourcesInfo()); }, 1500).unref(); });
