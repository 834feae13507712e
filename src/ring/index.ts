export { owners, backupFor } from './rendezvous.js';
export { backupsFor, type Placed } from './placement.js';
