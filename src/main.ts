// The api's entry until 2.0: PM2 keeps the script path of a running app across `pm2 reload` and
// in the list `pm2 save` writes, so a deployment started by an earlier release still starts
// dist/src/main.js after it upgrades. This hands it to the api program (src/api/main.ts), which
// new starts run directly.
import './api/main';
