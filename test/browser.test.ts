// The chat demo end to end in real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded). The server is `examples/chat/server.js` as
// `npm start` runs it, on PORT=0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { chromium, type Page } from 'playwright-core';
import { assertNoLeaks } from './helpers/hub.ts';
import { run, ROOT } from './helpers/child.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

// The functions passed to waitForFunction run in the page; test/tsconfig has no DOM lib (adding it
// would change globals for every test), so this module declares the little it uses.
declare const document: {
  getElementById(id: string): { textContent: string | null } | null;
  querySelector(selector: string): { textContent: string | null } | null;
};

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WAIT = 10_000;

/** Resolves when `#id` shows exactly `text`. */
function shows(page: Page, id: string, text: string, what: string): Promise<unknown> {
  const shown = page.waitForFunction(
    ([id, text]) => document.getElementById(id!)?.textContent === text,
    [id, text],
    { timeout: WAIT },
  );
  return within(shown, WAIT + 1000, what);
}

/** Resolves when the chat log's last line is exactly `text`. */
function logs(page: Page, text: string, what: string): Promise<unknown> {
  const shown = page.waitForFunction(
    (text) => document.querySelector('#log li:last-child')?.textContent === text,
    text,
    {
      timeout: WAIT,
    },
  );
  return within(shown, WAIT + 1000, what);
}

test('two pages chat through the demo; the online count goes 1 → 2 → 1', async (t) => {
  const program = await run(t, 'examples/chat/server.js');
  const browser = await within(
    chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    }),
    30_000,
    `chromium.launch(${CHROMIUM})`,
  );
  t.after(() => browser.close());
  const origin = `http://127.0.0.1:${program.port}/`;

  const alice = await browser.newPage();
  const errors: string[] = [];
  alice.on('pageerror', (err) => errors.push(err.message));
  await within(alice.goto(origin), WAIT, 'alice opens the page');
  await shows(alice, 'status', 'connected', 'alice connected');
  await shows(alice, 'online', '1', 'alice sees 1 online');

  const bob = await browser.newPage();
  bob.on('pageerror', (err) => errors.push(err.message));
  await within(bob.goto(origin), WAIT, 'bob opens the page');
  await shows(bob, 'status', 'connected', 'bob connected');
  await shows(bob, 'online', '2', 'bob sees 2 online');
  await shows(alice, 'online', '2', 'alice sees 2 online');

  await alice.fill('#name', 'alice');
  await alice.click('#name-form button');
  await logs(alice, 'you are now alice', 'alice renamed');

  await alice.fill('#text', 'hello from alice');
  await alice.press('#text', 'Enter');
  await logs(bob, 'alice: hello from alice', 'bob shows alice’s message');
  await logs(alice, 'alice: hello from alice', 'alice shows her own message');
  assert.equal(await alice.inputValue('#text'), '', 'the input is cleared after sending');

  await mkdir(new URL('artifacts/', import.meta.url), { recursive: true });
  await bob.screenshot({ path: `${ROOT}test/artifacts/chat.png`, fullPage: true });

  await bob.close();
  await shows(alice, 'online', '1', 'alice sees 1 online after bob leaves');
  assert.deepEqual(errors, [], 'no page errors');

  await browser.close();
  assert.deepEqual(await program.stop(), { code: 0, signal: null });
});
