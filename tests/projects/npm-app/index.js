const ms = require("ms");
let dev = "absent";
try {
  require.resolve("is-number");
  dev = "present";
} catch {}
console.log(`two hours are ${ms("2h")} ms; the dev dependency is ${dev}`);
