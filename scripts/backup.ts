// npm run backup: one backup now, exactly as the scheduled PM2 app makes it.
import '../src/backup/main';
