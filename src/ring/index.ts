export { owners, backupFor } from './rendezvous.js';
