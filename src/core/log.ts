// Logging: pino writing asynchronously, so a slow terminal or pipe never blocks the proxy's event loop.
// One destination per process, shared by every logger, flushed once when the process exits.
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

let destination: ReturnType<typeof pino.destination> | undefined;

function sharedDestination(): ReturnType<typeof pino.destination> {
  if (!destination) {
    const dest = pino.destination({ dest: 2, sync: false, minLength: 0 });
    process.once('exit', () => dest.flushSync());
    destination = dest;
  }
  return destination;
}

export function createLogger(name: string, level: LevelWithSilent): Logger {
  return pino({ name, level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, sharedDestination());
}
