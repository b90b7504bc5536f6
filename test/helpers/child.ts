import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { within } from './wait.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The first `http://host:port` a program prints; examples print their bound URL on stdout. */
const BOUND = /https?:\/\/[\w.[\]:-]+?:(\d+)/;

export interface Program {
  child: ChildProcess;
  port: number;
  /** Everything printed so far, stdout and stderr. */
  output(): string;
  /** Resolves the first output line matching `pattern` (lines already printed count). */
  line(pattern: RegExp, what: string, ms?: number): Promise<string>;
  /** SIGTERM, then resolves the exit code and signal; SIGKILL if it has not exited within `ms`. */
  stop(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs `node [nodeArgs] file` from the repo root with `PORT=0` and waits for the URL it prints.
 * The child is killed at test end if the test has not stopped it.
 */
export async function run(
  t: TestContext,
  file: string,
  env: Record<string, string> = {},
  ms = 10_000,
  nodeArgs: string[] = [],
): Promise<Program> {
  const child = spawn(process.execPath, [...nodeArgs, file], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const watchers = new Set<() => void>();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const watch of watchers) watch();
    });
  });
  const onData = (chunk: Buffer): void => {
    text += chunk.toString();
    for (const watch of watchers) watch();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const line = (pattern: RegExp, what: string, wait = ms): Promise<string> => {
    let watch!: () => void;
    const found = new Promise<string>((resolve, reject) => {
      watch = () => {
        const hit = text.split('\n').find((l) => pattern.test(l));
        if (hit !== undefined) resolve(hit);
        else if (child.exitCode !== null || child.signalCode !== null) {
          reject(
            new Error(
              `${file} exited (${child.exitCode ?? child.signalCode}) before printing ${what}:\n${text}`,
            ),
          );
        }
      };
      watchers.add(watch);
      watch();
    });
    return within(found, wait, `${what} from ${file}`)
      .catch((err: Error) => {
        throw new Error(`${err.message}; output so far:\n${text}`);
      })
      .finally(() => watchers.delete(watch));
  };

  const bound = await line(BOUND, 'its bound URL');
  const port = Number(BOUND.exec(bound)![1]);
  return {
    child,
    port,
    output: () => text,
    line,
    async stop(wait = 5000) {
      child.kill('SIGTERM');
      try {
        return await within(exited, wait, `${file} to exit after SIGTERM`);
      } catch (err) {
        child.kill('SIGKILL');
        throw err;
      }
    },
  };
}

export interface HttpResult {
  status: number;
  type: string;
  body: string;
}

/** One HTTP request with no keep-alive (a pooled socket would outlive the test). */
export function http(
  url: string,
  init: { method?: string; body?: unknown } = {},
): Promise<HttpResult> {
  const body = init.body === undefined ? undefined : JSON.stringify(init.body);
  const done = new Promise<HttpResult>((resolve, reject) => {
    const req = request(
      url,
      {
        method: init.method ?? 'GET',
        agent: false,
        headers:
          body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type'] ?? ''),
            body: text,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  return within(done, 5000, `${init.method ?? 'GET'} ${url}`);
}
