// dashboard.mjs - the hub's dashboard in headless Chromium, checked against the hub's own
// database (sqlite3) and `sangam hub regions --json`. Started by run.sh, which sets up the hub
// and the regions and passes, in the environment: URL (the hub's API on TCP), TOKEN (a viewer's),
// HUB_DB, HUB_SOCK, SANGAM, CHROMIUM, SCREENSHOT (a path, or empty) and MIRZAPUR_PID (a region
// this test stops to see the page notice).
//
// Prints "ok N - ..." / "not ok N - ..." and "P passed, F failed"; exits 1 on any failure.
import {execFileSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {chromium} from 'playwright-core';

const env = name => {
    const v = process.env[name];
    if (v === undefined)
        throw new Error(`${name} is not set: run tests/browser/run.sh`);
    return v;
};
const URL_ = env('URL'), TOKEN = env('TOKEN'), HUB_DB = env('HUB_DB'), HUB_SOCK = env('HUB_SOCK');
const SANGAM = env('SANGAM'), SCREENSHOT = env('SCREENSHOT');
const MIRZAPUR_PID = Number(env('MIRZAPUR_PID'));
const XSS_NAMES = ['<script>window.__pwned=1</script>', '<img src=x onerror="window.__pwned=2">'];
const PAGE_SIZE = 25;

let passed = 0, failed = 0, n = 0;
function ok(desc) {
    n++;
    passed++;
    console.log(`ok ${n} - ${desc}`);
}
function notOk(desc, detail) {
    n++;
    failed++;
    console.log(`not ok ${n} - ${desc}`);
    for (const line of String(detail ?? '').split('\n').slice(0, 12))
        console.log(`#   ${line}`);
}
function check(desc, got, want) {
    const g = JSON.stringify(got), w = JSON.stringify(want);
    if (g === w)
        ok(desc);
    else
        notOk(desc, `got  ${g.slice(0, 400)}\nwant ${w.slice(0, 400)}`);
}
function truthy(desc, cond, detail) {
    if (cond)
        ok(desc);
    else
        notOk(desc, detail);
}

// One column of rows from the hub's database. The queries are fixed strings of this file.
function sql(query) {
    const out = execFileSync('sqlite3', ['-readonly', HUB_DB, query], {encoding: 'utf8'});
    return out.split('\n').filter(l => l !== '');
}
function hubRegions() {
    const out = execFileSync(SANGAM, ['--node', HUB_SOCK, '--json', 'hub', 'regions'],
        {encoding: 'utf8'});
    return Object.fromEntries(JSON.parse(out).items.map(r => [r.region, r]));
}

// RFC 4180: rows of cells, quoted cells may hold commas, quotes ("") and line breaks.
function parseCsv(text) {
    const rows = [];
    let row = [], cell = '', quoted = false;
    for (let i = 0; i < text.length; i++) {
        const ch = text[i];
        if (quoted) {
            if (ch === '"' && text[i + 1] === '"') {
                cell += '"';
                i++;
            } else if (ch === '"') {
                quoted = false;
            } else {
                cell += ch;
            }
        } else if (ch === '"') {
            quoted = true;
        } else if (ch === ',') {
            row.push(cell);
            cell = '';
        } else if (ch === '\r' && text[i + 1] === '\n') {
            row.push(cell);
            rows.push(row);
            row = [];
            cell = '';
            i++;
        } else {
            cell += ch;
        }
    }
    if (cell !== '' || row.length)
        rows.push([...row, cell]);
    return rows;
}

async function main() {
    // --- The page's files: served without a token, with their types; the data is not ---
    for (const [path, type] of [['/', 'text/html'], ['/dashboard/app.js', 'text/javascript'],
        ['/dashboard/style.css', 'text/css']]) {
        const res = await fetch(URL_ + path);
        check(`GET ${path} needs no token and is ${type}`,
            [res.status, (res.headers.get('content-type') || '').split(';')[0]], [200, type]);
    }
    const html = await (await fetch(URL_ + '/')).text();
    truthy('the page carries its Content-Security-Policy (own script, style and API only)',
        /http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self'/
            .test(html));
    check('the API still needs a token', (await fetch(URL_ + '/v1/members')).status, 401);
    check('an unknown dashboard file is 404, not the page',
        (await fetch(URL_ + '/dashboard/secret.txt')).status, 404);

    const browser = await chromium.launch({executablePath: env('CHROMIUM'), headless: true});
    try {
        await browserChecks(browser);
    } finally {
        await browser.close();
    }
}

async function browserChecks(browser) {
    const context = await browser.newContext({viewport: {width: 1280, height: 1400},
        acceptDownloads: true, locale: 'en-GB', timezoneId: 'Asia/Kolkata'});
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const problems = [];
    let dialogs = 0;
    page.on('dialog', d => {
        dialogs++;
        d.dismiss().catch(() => {});
    });
    page.on('pageerror', e => problems.push('pageerror: ' + e.message));
    // Errors on the console, but for the 401s this test provokes on purpose (a wrong token).
    page.on('console', m => {
        if (m.type() === 'error' && !/status of 401/.test(m.text()))
            problems.push('console: ' + m.text());
    });

    // --- Sign in ---
    await page.goto(URL_ + '/');
    truthy('without a token the page asks for one', await page.isVisible('#login-form') &&
        !(await page.isVisible('#dash')));
    await page.fill('#token', 'sgt_00000000_0123456789abcdef0123456789abcdef');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
    truthy('a token the hub does not know is refused and not kept',
        /refused/.test(await page.textContent('#login-error')) &&
        !(await page.isVisible('#dash')) &&
        await page.evaluate(() => sessionStorage.length + localStorage.length) === 0,
        await page.textContent('#login-error'));
    await page.fill('#token', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('body[data-loaded=overview]');
    await page.waitForSelector('#list-members[data-loaded]');
    check('the token is kept for this tab only (sessionStorage)',
        await page.evaluate(() => [sessionStorage.getItem('sangam.token') !== null,
            localStorage.length]), [true, 0]);

    // --- Region cards against the hub's rows and `sangam hub regions --json` ---
    // The hub's view just before and just after the page reloads its cards: what the page shows
    // must be one of the two (last contact moves with every keepalive).
    const refreshed = async () => {
        const before = await page.getAttribute('body', 'data-updated');
        await page.click('#refresh');
        await page.waitForFunction(b => document.body.getAttribute('data-updated') !== b, before);
    };
    const earlier = hubRegions();
    await refreshed();
    const regions = hubRegions();
    const names = Object.keys(regions).sort();
    const either = (r, f) => [...new Set([earlier[r][f], regions[r][f]])];
    check('one card per region', await page.$$eval('.card', cs => cs.map(c => c.dataset.region)),
        names);
    for (const r of names) {
        const card = `.card[data-region="${r}"]`;
        const want = regions[r];
        const got = await page.$eval(card, c => {
            const f = name => c.querySelector(`[data-field="${name}"]`);
            return {
                state: c.dataset.state,
                members: Number(f('members').dataset.value),
                changes: f('lag').dataset.changes,
                seconds: f('lag').dataset.seconds,
                lagText: f('lag').textContent,
                cert: f('cert').title,
                contact: f('last-contact').title,
                asOf: f('data-as-of').title,
            };
        });
        check(`${r}: members on the card = count(*) in the hub's members`, got.members,
            Number(sql(`SELECT count(*) FROM members WHERE region = '${r}'`)[0]));
        check(`${r}: connected, as hub regions says`, got.state,
            want.connected ? 'connected' : 'disconnected');
        truthy(`${r}: lag in changes and seconds, as hub regions says`,
            either(r, 'lag_changes').includes(Number(got.changes)) &&
            either(r, 'lag_seconds').includes(Number(got.seconds)),
            `page ${got.changes} changes, ${got.seconds} s; hub ${either(r, 'lag_changes')} ` +
            `changes, ${either(r, 'lag_seconds')} s`);
        truthy(`${r}: the lag reads "${got.lagText}"`,
            /^\d[\d,]* changes · \d+\.\d s$/.test(got.lagText), got.lagText);
        check(`${r}: certificate expiry, as hub regions says`, got.cert, want.cert_not_after);
        truthy(`${r}: last contact, as hub regions says`,
            either(r, 'last_contact').includes(got.contact),
            `page ${got.contact}; hub ${either(r, 'last_contact')}`);
        truthy(`${r}: data as of is the clock of the newest applied change`,
            /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(got.asOf), got.asOf);
    }

    // --- Charts: drawn, with the database's numbers ---
    const charts = await page.$$eval('#charts figure', fs => fs.map(f => {
        const s = f.querySelector('svg').getBoundingClientRect();
        return {id: f.id, w: s.width, h: s.height, bars: f.querySelectorAll('svg rect').length};
    }));
    check('five charts', charts.map(c => c.id),
        ['chart-kind', 'chart-gender', 'chart-sessions', 'chart-category', 'chart-status']);
    truthy('every chart is an <svg> of non-zero size with bars in it',
        charts.every(c => c.w > 100 && c.h > 40 && c.bars > 0), JSON.stringify(charts));
    // The bars of a chart: key (what a segment counts), value, and its tooltip ("row · key: n").
    const bars = chart => page.$$eval(`#${chart} svg rect[data-value]`, rs => rs.map(r =>
        ({key: r.dataset.key, v: Number(r.dataset.value),
            row: r.querySelector('title').textContent})));
    const sum = list => list.reduce((a, b) => a + b.v, 0);
    const kindBars = await bars('chart-kind');
    for (const r of names)
        check(`members by kind: ${r}'s bar adds up to its members`,
            sum(kindBars.filter(b => b.row.startsWith(r + ' ·'))),
            Number(sql(`SELECT count(*) FROM members WHERE region = '${r}'`)[0]));
    check('members by gender: women in all regions',
        sum((await bars('chart-gender')).filter(b => b.key === 'female')),
        Number(sql(`SELECT count(*) FROM members WHERE gender = 'female'`)[0]));
    check('sessions per month: the columns add up to the sessions',
        sum(await bars('chart-sessions')),
        Number(sql('SELECT count(*) FROM sessions')[0]));
    check('issues by status: open issues',
        sum((await bars('chart-status')).filter(b => b.key === 'open')),
        Number(sql(`SELECT count(*) FROM issues WHERE status = 'open'`)[0]));

    // --- Lists: search, filters, paging ---
    const panel = type => `#list-${type}`;
    // Runs action and waits until the list has loaded again.
    const reload = async (type, action) => {
        const before = await page.getAttribute(panel(type), 'data-loaded');
        await action();
        await page.waitForFunction(([sel, b]) => {
            const p = document.querySelector(sel);
            return p.getAttribute('data-loaded') !== b && !p.hasAttribute('aria-busy');
        }, [panel(type), before]);
    };
    const rowIds = type => page.$$eval(`${panel(type)} tbody tr[data-id]`,
        trs => trs.map(t => t.dataset.id));
    const search = async (type, fields) => {
        await page.click(`#tab-${type}`);
        for (const [name, value] of Object.entries(fields)) {
            const sel = `${panel(type)} [name="${name}"]`;
            if (name === 'q')
                await page.fill(sel, value);
            else
                await page.selectOption(sel, value);
        }
        await reload(type, () => page.click(`${panel(type)} button[type=submit]`));
    };

    await search('members', {q: 'chandrakala'});
    check('search finds a member by name (case-insensitive)', await rowIds('members'),
        sql(`SELECT id FROM members WHERE name = 'Chandrakala Kushwaha'`));
    check('...and shows her row', await page.$$eval(`${panel('members')} tbody tr td`,
        tds => tds.slice(0, 2).map(t => t.textContent)), ['Chandrakala Kushwaha', 'entrepreneur']);

    await search('members', {q: '', region: 'mirzapur', kind: 'entrepreneur'});
    check('region and kind filters: the first page is the database\'s',
        await rowIds('members'), sql(`SELECT id FROM members WHERE region = 'mirzapur' AND
            kind = 'entrepreneur' ORDER BY id LIMIT ${PAGE_SIZE}`));

    await search('members', {q: '', region: '', kind: ''});
    const all = sql('SELECT id FROM members ORDER BY id');
    check('page 1 of all members', await rowIds('members'), all.slice(0, PAGE_SIZE));
    await reload('members', () => page.click(`${panel('members')} .next`));
    check('"Next" shows page 2 (after=next)', await rowIds('members'),
        all.slice(PAGE_SIZE, 2 * PAGE_SIZE));
    await reload('members', () => page.click(`${panel('members')} .next`));
    await reload('members', () => page.click(`${panel('members')} .prev`));
    check('"Previous" goes back a page', await rowIds('members'),
        all.slice(PAGE_SIZE, 2 * PAGE_SIZE));
    truthy('the pager says where it is',
        /Page 2 · rows 26–50/.test(await page.textContent(`${panel('members')} .page`)),
        await page.textContent(`${panel('members')} .page`));
    await reload('members', () => page.click(`${panel('members')} .prev`));
    check('back on page 1, "Previous" is off',
        await page.isDisabled(`${panel('members')} .prev`), true);

    // --- Markup in the data is text ---
    for (const name of XSS_NAMES) {
        await search('members', {q: name.slice(0, 12)});
        check(`a member named ${name} is shown as that text`,
            await page.$$eval(`${panel('members')} tbody tr td:first-child`,
                tds => tds.map(t => t.textContent)), [name]);
    }
    await search('issues', {q: '<b>raised</b>', region: 'bundelkhand', status: ''});
    truthy('an issue title with <b> shows the tag as text',
        (await page.$$eval(`${panel('issues')} tbody td`, tds => tds.map(t => t.textContent)))
            .some(t => t.includes('<b>raised</b> & "quoted"')) &&
        await page.$$eval(`${panel('issues')} tbody b`, bs => bs.length) === 0);
    check('no injected element exists in the tables',
        await page.$$eval('#lists tbody script, #lists tbody img', es => es.length), 0);
    check('the injected scripts did not run (window.__pwned undefined, no dialog)',
        [await page.evaluate(() => typeof window.__pwned), dialogs], ['undefined', 0]);

    // --- CSV exports through the page equal the rows ---
    const download = async (type, fields) => {
        await search(type, fields);
        const [dl] = await Promise.all([page.waitForEvent('download'),
            page.click(`${panel(type)} button.csv`)]);
        const rows = parseCsv(readFileSync(await dl.path(), 'utf8'));
        return {name: dl.suggestedFilename(), header: rows[0], ids: rows.slice(1).map(r => r[0]),
            rows: rows.slice(1)};
    };
    let csv = await download('members', {q: '', region: '', kind: ''});
    check('members CSV: the header', csv.header.slice(0, 4), ['id', 'region', 'name', 'kind']);
    check(`members CSV: every member once, in id order (${all.length} rows)`, csv.ids, all);
    check('members CSV: the names are the database\'s, markup and all',
        csv.rows.filter(r => XSS_NAMES.includes(r[2])).map(r => r[2]).sort(),
        [...XSS_NAMES].sort());
    truthy('members CSV: a sensible file name', /^sangam-members-\d{4}-\d\d-\d\d\.csv$/.test(csv.name),
        csv.name);
    csv = await download('issues', {q: '', region: 'mirzapur', status: 'open'});
    check('issues CSV with filters (mirzapur, open): the same ids, order and count as the rows',
        csv.ids, sql(`SELECT id FROM issues WHERE region = 'mirzapur' AND status = 'open'
            ORDER BY id`));
    csv = await download('sessions', {q: 'session 1', region: '', kind: ''});
    check('sessions CSV of a search', csv.ids,
        sql(`SELECT id FROM sessions WHERE lower(title) LIKE '%session 1%' ORDER BY id`));

    // --- The screenshot for the README: the overview and the first page of members ---
    await search('members', {q: '', region: '', kind: ''});
    if (SCREENSHOT) {
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.screenshot({path: SCREENSHOT, fullPage: false});
        ok(`screenshot saved to ${SCREENSHOT}`);
    }

    // --- A region goes away: the card says so after a refresh ---
    process.kill(MIRZAPUR_PID, 'SIGTERM');
    const deadline = Date.now() + 10000;
    while (hubRegions().mirzapur.connected && Date.now() < deadline)
        await new Promise(r => setTimeout(r, 100));
    await page.click('#refresh');
    await page.waitForSelector('.card[data-region=mirzapur][data-state=disconnected]');
    check('a stopped region shows as disconnected, lag unknown',
        await page.textContent('.card[data-region=mirzapur] [data-field=lag]'),
        'unknown while disconnected');

    check('no script error and no CSP violation on the console', problems, []);

    // --- Sign out; a revoked token sends the page back to the form ---
    await page.click('#signout');
    truthy('sign out forgets the token', await page.isVisible('#login-form') &&
        await page.evaluate(() => sessionStorage.length + localStorage.length) === 0);
    await page.reload();
    truthy('after a reload the page asks again', await page.isVisible('#login-form'));
    await page.fill('#token', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#dash:not([hidden])');
    execFileSync(SANGAM, ['--node', HUB_SOCK, 'hub', 'token', 'revoke', TOKEN.split('_')[1]]);
    await page.click('#refresh');
    await page.waitForSelector('#login-form', {state: 'visible'});
    truthy('a revoked token: back to the form, told why, token forgotten',
        /no longer accepts/.test(await page.textContent('#login-error')) &&
        await page.evaluate(() => sessionStorage.length) === 0,
        await page.textContent('#login-error'));
    await context.close();
}

try {
    await main();
} catch (e) {
    notOk('the browser test ran to its end', e.stack || e);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
