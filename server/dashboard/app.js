/*
 * app.js - the hub's dashboard: region cards, report charts and record lists, read from the
 * hub's API (docs/API.md) with a bearer token.
 *
 * Invariants:
 * - Text that comes from the API reaches the page only as text nodes (textContent,
 *   createTextNode) or attribute values set with setAttribute; never through innerHTML. A member
 *   named "<script>...</script>" is shown as those characters and runs nothing.
 * - The token lives in sessionStorage (or localStorage when the user ticks "remember"), is sent
 *   only as an Authorization header to this origin, and is dropped when the hub answers 401.
 * - Charts are plain SVG drawn here: no library, no request but the API's.
 */
'use strict';

(function () {
    const TOKEN_KEY = 'sangam.token';
    const PAGE_SIZE = 25;
    const CSV_PAGE = 1000;
    const REFRESH_MS = 30000;
    const SVG_NS = 'http://www.w3.org/2000/svg';
    const PALETTE = ['#2f6f9f', '#e0873a', '#4f9d69', '#c8553d', '#8a6fb0', '#b89a2e', '#4fa3b5',
        '#9a7b5f', '#d17fa5', '#7f7f7f'];
    // Enumerations in the order of proto/records.c, so colours and legends stay put.
    const ORDER = {
        kind: ['entrepreneur', 'representative', 'staff'],
        gender: ['female', 'male', 'other', 'undisclosed', 'not given'],
        session: ['working_session', 'launch', 'training', 'radio_show', 'emailer', 'whatsapp',
            'field_visit', 'other'],
        category: ['finance', 'market', 'skills', 'infrastructure', 'awareness', 'regulation',
            'technology', 'other'],
        status: ['open', 'in_progress', 'resolved', 'closed'],
    };
    const LISTS = [
        {
            type: 'members', title: 'Members', search: 'Name contains…',
            filter: {name: 'kind', label: 'Any kind', options: ORDER.kind},
            cols: [['name', 'Name'], ['kind', 'Kind', 1], ['gender', 'Gender', 1],
                ['birth_year', 'Born'], ['village', 'Village'], ['district', 'District'],
                ['sector', 'Sector', 1], ['region', 'Region'], ['joined_on', 'Joined']],
        },
        {
            type: 'issues', title: 'Issues', search: 'Title contains…',
            filter: {name: 'status', label: 'Any status', options: ORDER.status},
            cols: [['opened_on', 'Opened'], ['title', 'Title'], ['category', 'Category', 1],
                ['status', 'Status', 1], ['region', 'Region'], ['resolved_on', 'Resolved']],
        },
        {
            type: 'sessions', title: 'Sessions', search: 'Title contains…',
            filter: {name: 'kind', label: 'Any kind', options: ORDER.session},
            cols: [['held_on', 'Held on'], ['title', 'Title'], ['kind', 'Kind', 1],
                ['place', 'Place'], ['region', 'Region']],
        },
    ];

    const state = {token: null, regions: [], lists: {}, timer: null, loading: null, updates: 0};
    const num = new Intl.NumberFormat('en-IN');

    /* ---- DOM helpers: every piece of text becomes a text node ---- */

    function $(id) {
        return document.getElementById(id);
    }

    function append(node, children) {
        for (const c of children) {
            if (c === null || c === undefined || c === false)
                continue;
            node.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
        }
        return node;
    }

    // el('td', {class: 'x', 'data-id': id}, 'text', child...): attributes by setAttribute.
    function el(tag, attrs, ...children) {
        const node = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {}))
            if (v !== null && v !== undefined && v !== false)
                node.setAttribute(k, v === true ? '' : String(v));
        return append(node, children);
    }

    function svg(tag, attrs, ...children) {
        const node = document.createElementNS(SVG_NS, tag);
        for (const [k, v] of Object.entries(attrs || {}))
            node.setAttribute(k, String(v));
        return append(node, children);
    }

    function human(s) {
        return String(s).replace(/_/g, ' ');
    }

    function when(iso) {
        if (!iso)
            return '—';
        const d = new Date(iso);
        if (isNaN(d))
            return String(iso);
        return d.toLocaleString('en-GB', {dateStyle: 'medium', timeStyle: 'short'});
    }

    function ago(seconds) {
        if (seconds === null || seconds === undefined || !isFinite(seconds))
            return '';
        const s = Math.max(0, Math.round(seconds));
        if (s < 90)
            return s + ' s ago';
        if (s < 90 * 60)
            return Math.round(s / 60) + ' min ago';
        if (s < 36 * 3600)
            return Math.round(s / 3600) + ' h ago';
        return Math.round(s / 86400) + ' days ago';
    }

    function secondsSince(iso) {
        const t = Date.parse(iso);
        return isNaN(t) ? null : (Date.now() - t) / 1000;
    }

    /* ---- the token and the API ---- */

    class AuthError extends Error {}

    function storedToken() {
        return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
    }

    function forgetToken() {
        sessionStorage.removeItem(TOKEN_KEY);
        localStorage.removeItem(TOKEN_KEY);
        state.token = null;
    }

    // GET path with the token; resolves to the Response, throws AuthError on 401.
    async function api(path) {
        const res = await fetch(path, {
            headers: {Authorization: 'Bearer ' + state.token},
            cache: 'no-store', credentials: 'omit', redirect: 'error',
        });
        if (res.status === 401)
            throw new AuthError('the hub refused the token');
        if (!res.ok) {
            let msg = res.statusText;
            try {
                msg = (await res.json()).error.message;
            } catch (e) {
                /* not an API error body: keep the status text */
            }
            throw new Error(path.split('?')[0] + ': ' + res.status + ' ' + msg);
        }
        return res;
    }

    async function apiJson(path) {
        return (await api(path)).json();
    }

    function failed(e) {
        if (e instanceof AuthError) {
            forgetToken();
            showLogin('The hub no longer accepts this token (revoked?). Sign in with another.');
            return;
        }
        const box = $('error');
        box.textContent = 'Could not load: ' + e.message;
        box.hidden = false;
    }

    /* ---- sign in and out ---- */

    function showLogin(message) {
        clearInterval(state.timer);
        state.timer = null;
        $('dash').hidden = true;
        $('bar').hidden = true;
        $('login').hidden = false;
        $('login-error').textContent = message || '';
        $('token').value = '';
        $('token').focus();
    }

    async function signIn(ev) {
        ev.preventDefault();
        const token = $('token').value.trim();
        if (!/^sgt_[A-Za-z0-9_]+$/.test(token)) {
            $('login-error').textContent = 'That is not a Sangam API token (they start with sgt_).';
            return;
        }
        state.token = token;
        try {
            await api('/v1/regions');
        } catch (e) {
            state.token = null;
            $('login-error').textContent = e instanceof AuthError
                ? 'The hub refused this token: it is unknown, revoked or mistyped.'
                : 'Could not reach the hub: ' + e.message;
            return;
        }
        (($('remember').checked) ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
        showDashboard();
    }

    function signOut() {
        forgetToken();
        showLogin('Signed out.');
    }

    function showDashboard() {
        $('login').hidden = true;
        $('dash').hidden = false;
        $('bar').hidden = false;
        refresh();
        for (const l of LISTS)
            loadList(l.type);
        clearInterval(state.timer);
        state.timer = setInterval(() => {
            if (document.visibilityState === 'visible')
                refresh();
        }, REFRESH_MS);
    }

    /* ---- region cards and charts ---- */

    async function refresh() {
        if (state.loading)
            return state.loading;
        state.loading = (async () => {
            try {
                const [regions, summary] = await Promise.all(
                    [apiJson('/v1/regions'), apiJson('/v1/reports/summary')]);
                $('error').hidden = true;
                state.regions = regions.items.map(r => r.region).sort();
                renderCards(regions.items, summary);
                renderCharts(summary);
                updateRegionFilters();
                $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString('en-GB');
                document.body.setAttribute('data-loaded', 'overview');
                document.body.setAttribute('data-updated', String(++state.updates));
            } catch (e) {
                failed(e);
            } finally {
                state.loading = null;
            }
        })();
        return state.loading;
    }

    function fact(label, field, value, note, attrs) {
        return [el('dt', null, label),
            el('dd', Object.assign({'data-field': field}, attrs || {}), value,
                note ? el('span', {class: 'note'}, ' ' + note) : null)];
    }

    function renderCards(items, summary) {
        const cards = $('cards');
        const out = [];
        items = items.slice().sort((a, b) => a.region < b.region ? -1 : 1);
        for (const r of items) {
            const rep = (summary.regions || {})[r.region] || {};
            const members = rep.members ? rep.members.total : 0;
            const stateName = r.revoked_at ? 'revoked' : r.connected ? 'connected' : 'disconnected';
            const lag = r.connected && r.lag_changes !== undefined
                ? num.format(r.lag_changes) + ' changes · ' + Number(r.lag_seconds).toFixed(1) + ' s'
                : 'unknown while disconnected';
            const certLeft = r.cert_not_after ? secondsSince(r.cert_not_after) : null;
            const certDays = certLeft === null ? null : Math.floor(-certLeft / 86400);
            const dl = el('dl', null,
                ...fact('Members', 'members', num.format(members), null, {'data-value': members}),
                ...fact('Lag', 'lag', lag, null, {
                    'data-changes': r.connected ? r.lag_changes : null,
                    'data-seconds': r.connected ? r.lag_seconds : null,
                }),
                ...fact('Data as of', 'data-as-of', when(rep.data_as_of),
                    ago(r.data_age_seconds), {title: rep.data_as_of || ''}),
                ...fact('Last contact', 'last-contact', when(r.last_contact),
                    ago(secondsSince(r.last_contact)), {title: r.last_contact || ''}),
                ...fact('Certificate expires', 'cert', r.cert_not_after ? when(r.cert_not_after) : '—',
                    certDays === null ? null : certDays < 0 ? '(expired)' : '(' + certDays + ' days)',
                    {title: r.cert_not_after || '', class: certDays !== null && certDays < 30 ? 'warn' : null}),
                ...(r.quarantined ? fact('Quarantined', 'quarantined', num.format(r.quarantined),
                    'changes held', {class: 'warn'}) : []),
                ...(r.revoked_at ? fact('Revoked', 'revoked', when(r.revoked_at)) : []),
                ...(r.last_error ? fact('Last error', 'last-error', r.last_error, null,
                    {class: 'warn'}) : []));
            out.push(el('article', {class: 'card', 'data-region': r.region,
                'data-state': stateName},
                el('header', null, el('h3', null, r.region),
                    el('span', {class: 'state ' + stateName, 'data-field': 'state'}, stateName)),
                dl));
        }
        if (out.length === 0)
            out.push(el('p', {class: 'empty'}, 'No region has joined this hub yet.'));
        cards.replaceChildren(...out);
    }

    function ordered(keys, order) {
        return [...keys].sort((a, b) => {
            const ia = order.indexOf(a), ib = order.indexOf(b);
            if (ia !== ib)
                return (ia < 0 ? 1e9 : ia) - (ib < 0 ? 1e9 : ib);
            return a < b ? -1 : a > b ? 1 : 0;
        });
    }

    function legend(keys, colour) {
        return el('ul', {class: 'legend'}, ...keys.map(k => el('li', null,
            svg('svg', {width: 10, height: 10, 'aria-hidden': 'true'},
                svg('rect', {width: 10, height: 10, rx: 2, fill: colour(k)})),
            human(k))));
    }

    function colourOf(keys) {
        return k => PALETTE[keys.indexOf(k) % PALETTE.length];
    }

    // One horizontal bar per row, split by key. rows: [{label, values: {key: n}}].
    function stackedBars(id, title, rows, order) {
        const keys = ordered(new Set(rows.flatMap(r => Object.keys(r.values))), order);
        const colour = colourOf(keys);
        const W = 520, labelW = 110, valueW = 60, rowH = 22, gap = 10;
        const H = Math.max(1, rows.length) * (rowH + gap) + gap;
        const max = Math.max(1, ...rows.map(r => Object.values(r.values).reduce((a, b) => a + b, 0)));
        const scale = (W - labelW - valueW) / max;
        const g = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title});
        rows.forEach((row, i) => {
            const y = gap + i * (rowH + gap);
            let x = labelW;
            let total = 0;
            g.appendChild(svg('text', {x: labelW - 8, y: y + rowH / 2, class: 'label',
                'text-anchor': 'end', 'dominant-baseline': 'middle'}, row.label));
            for (const k of keys) {
                const v = row.values[k] || 0;
                if (v <= 0)
                    continue;
                const w = v * scale;
                g.appendChild(svg('rect', {x: x, y: y, width: Math.max(w, 1), height: rowH,
                    fill: colour(k), 'data-key': k, 'data-value': v},
                    svg('title', null, `${row.label} · ${human(k)}: ${num.format(v)}`)));
                x += w;
                total += v;
            }
            g.appendChild(svg('text', {x: x + 6, y: y + rowH / 2, class: 'value',
                'dominant-baseline': 'middle'}, num.format(total)));
        });
        return el('figure', {class: 'chart', id: id}, el('figcaption', null, title), g,
            legend(keys, colour));
    }

    // Columns per month, one per region side by side. series: {region: {month: {sessions, attendance}}}.
    function monthColumns(id, title, series) {
        const regions = Object.keys(series).sort();
        const colour = colourOf(regions);
        const all = new Set(regions.flatMap(r => Object.keys(series[r])));
        let months = [...all].filter(m => /^\d{4}-\d{2}$/.test(m)).sort();
        if (months.length > 1) {
            // Every month between the first and the last, so gaps show as gaps.
            const filled = [];
            let [y, m] = months[0].split('-').map(Number);
            const last = months[months.length - 1];
            for (let s = months[0]; s <= last && filled.length < 240;) {
                filled.push(s);
                m++;
                if (m > 12) {
                    m = 1;
                    y++;
                }
                s = `${y}-${String(m).padStart(2, '0')}`;
            }
            months = filled;
        }
        const W = 1060, H = 200, left = 36, bottom = 40, top = 12;
        const max = Math.max(1, ...regions.flatMap(r => months.map(m => (series[r][m] || {}).sessions || 0)));
        const step = (W - left) / Math.max(1, months.length);
        const barW = Math.max(2, Math.min(28, (step - 8) / Math.max(1, regions.length)));
        const y0 = H - bottom;
        const sy = (H - bottom - top) / max;
        const g = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title});
        const tick = max <= 5 ? 1 : Math.ceil(max / 4);
        for (let t = 0; t <= max; t += tick) {
            g.appendChild(svg('line', {x1: left, x2: W, y1: y0 - t * sy, y2: y0 - t * sy,
                class: 'grid'}));
            g.appendChild(svg('text', {x: left - 6, y: y0 - t * sy, class: 'axis',
                'text-anchor': 'end', 'dominant-baseline': 'middle'}, t));
        }
        const names = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov',
            'Dec'];
        months.forEach((m, i) => {
            const x = left + i * step + (step - barW * regions.length) / 2;
            regions.forEach((r, j) => {
                const d = series[r][m] || {sessions: 0, attendance: 0};
                if (!d.sessions)
                    return;
                g.appendChild(svg('rect', {x: x + j * barW, y: y0 - d.sessions * sy,
                    width: barW - 1, height: d.sessions * sy, fill: colour(r), 'data-key': r,
                    'data-value': d.sessions},
                    svg('title', null, `${r} · ${m}: ${d.sessions} sessions, ${d.attendance} attended`)));
            });
            const [yy, mm] = m.split('-');
            const cx = left + i * step + step / 2;
            g.appendChild(svg('text', {x: cx, y: y0 + 15, class: 'axis', 'text-anchor': 'middle'},
                names[Number(mm) - 1] || mm));
            if (i === 0 || mm === '01')
                g.appendChild(svg('text', {x: cx, y: y0 + 30, class: 'axis', 'text-anchor': 'middle'}, yy));
        });
        if (months.length === 0)
            g.appendChild(svg('text', {x: W / 2, y: H / 2, class: 'axis', 'text-anchor': 'middle'},
                'No sessions yet'));
        return el('figure', {class: 'chart wide', id: id}, el('figcaption', null, title), g,
            legend(regions, colour));
    }

    function renderCharts(summary) {
        const regs = summary.regions || {};
        const names = Object.keys(regs).sort();
        const rows = (section, key) => names.map(r => ({
            label: r, values: ((regs[r][section] || {})[key]) || {},
        }));
        const sessions = {};
        for (const r of names)
            sessions[r] = (regs[r].sessions || {}).by_month || {};
        $('charts').replaceChildren(
            stackedBars('chart-kind', 'Members by kind', rows('members', 'by_kind'), ORDER.kind),
            stackedBars('chart-gender', 'Members by gender', rows('members', 'by_gender'),
                ORDER.gender),
            monthColumns('chart-sessions', 'Sessions per month', sessions),
            stackedBars('chart-category', 'Issues by category', rows('issues', 'by_category'),
                ORDER.category),
            stackedBars('chart-status', 'Issues by status', rows('issues', 'by_status'),
                ORDER.status));
    }

    /* ---- record lists: search, filters, paging, CSV ---- */

    function buildLists() {
        const tabs = $('tabs');
        const lists = $('lists');
        for (const l of LISTS) {
            const st = {after: null, next: null, back: [], page: 1};
            state.lists[l.type] = st;
            const tab = el('button', {type: 'button', role: 'tab', id: 'tab-' + l.type,
                'aria-controls': 'list-' + l.type}, l.title);
            tab.addEventListener('click', () => selectTab(l.type));
            tabs.appendChild(tab);
            const form = el('form', {class: 'filters', role: 'search'},
                el('input', {type: 'search', name: 'q', placeholder: l.search,
                    'aria-label': l.search, maxlength: 200}),
                el('select', {name: 'region', 'aria-label': 'Region'},
                    el('option', {value: ''}, 'All regions')),
                el('select', {name: l.filter.name, 'aria-label': l.filter.label},
                    el('option', {value: ''}, l.filter.label),
                    ...l.filter.options.map(o => el('option', {value: o}, human(o)))),
                el('button', {type: 'submit'}, 'Search'),
                el('button', {type: 'button', class: 'csv'}, 'Download CSV'),
                el('span', {class: 'status', 'aria-live': 'polite'}));
            form.addEventListener('submit', ev => {
                ev.preventDefault();
                form.querySelector('.status').textContent = '';
                Object.assign(st, {after: null, back: [], page: 1});
                loadList(l.type);
            });
            form.querySelector('.csv').addEventListener('click', () => downloadCsv(l));
            const table = el('table', null,
                el('thead', null, el('tr', null, ...l.cols.map(c => el('th', {scope: 'col'}, c[1])))),
                el('tbody'));
            const prev = el('button', {type: 'button', class: 'prev'}, '← Previous');
            const next = el('button', {type: 'button', class: 'next'}, 'Next →');
            prev.addEventListener('click', () => {
                st.after = st.back.pop() || null;
                st.page--;
                loadList(l.type);
            });
            next.addEventListener('click', () => {
                st.back.push(st.after);
                st.after = st.next;
                st.page++;
                loadList(l.type);
            });
            lists.appendChild(el('div', {id: 'list-' + l.type, class: 'list', role: 'tabpanel',
                'aria-labelledby': 'tab-' + l.type, 'data-type': l.type},
                form, el('div', {class: 'table-wrap'}, table),
                el('div', {class: 'pager'}, prev, el('span', {class: 'page'}), next)));
        }
        selectTab(LISTS[0].type);
    }

    function selectTab(type) {
        for (const l of LISTS) {
            const on = l.type === type;
            $('tab-' + l.type).setAttribute('aria-selected', String(on));
            $('list-' + l.type).hidden = !on;
        }
    }

    function updateRegionFilters() {
        for (const sel of document.querySelectorAll('.filters select[name=region]')) {
            const keep = sel.value;
            sel.replaceChildren(el('option', {value: ''}, 'All regions'),
                ...state.regions.map(r => el('option', {value: r}, r)));
            sel.value = state.regions.includes(keep) ? keep : '';
        }
    }

    // The list's query from its form: only the fields that are set.
    function listParams(l) {
        const form = $('list-' + l.type).querySelector('form');
        const p = new URLSearchParams();
        for (const name of ['q', 'region', l.filter.name]) {
            const v = form.elements[name].value.trim();
            if (v !== '')
                p.set(name, v);
        }
        return p;
    }

    async function loadList(type) {
        const l = LISTS.find(x => x.type === type);
        const st = state.lists[type];
        const panel = $('list-' + type);
        const p = listParams(l);
        p.set('limit', String(PAGE_SIZE));
        if (st.after)
            p.set('after', st.after);
        panel.setAttribute('aria-busy', 'true');
        try {
            const page = await apiJson(`/v1/${type}?${p}`);
            st.next = page.next;
            const rows = page.items.map(rec => el('tr', {'data-id': rec.id},
                ...l.cols.map(([key, , isEnum]) => {
                    const v = rec[key];
                    return v === null || v === undefined
                        ? el('td', {class: 'nil'}, '—')
                        : el('td', null, isEnum ? human(v) : String(v));
                })));
            if (rows.length === 0)
                rows.push(el('tr', null, el('td', {colspan: l.cols.length, class: 'empty'},
                    'Nothing matches.')));
            panel.querySelector('tbody').replaceChildren(...rows);
            const first = (st.page - 1) * PAGE_SIZE + 1;
            panel.querySelector('.page').textContent = page.items.length
                ? `Page ${st.page} · rows ${num.format(first)}–${num.format(first + page.items.length - 1)}`
                : `Page ${st.page}`;
            panel.querySelector('.prev').disabled = st.back.length === 0 && !st.after;
            panel.querySelector('.next').disabled = !page.next;
            panel.setAttribute('data-loaded', String(Date.now()));
        } catch (e) {
            failed(e);
        } finally {
            panel.removeAttribute('aria-busy');
        }
    }

    // Every record matching the list's filters as CSV, saved through a download.
    async function downloadCsv(l) {
        const panel = $('list-' + l.type);
        const status = panel.querySelector('.status');
        const p = listParams(l);
        p.set('format', 'csv');
        p.set('limit', String(CSV_PAGE));
        status.textContent = 'Preparing CSV…';
        try {
            const blob = await (await api(`/v1/${l.type}?${p}`)).blob();
            const parts = ['sangam', l.type];
            for (const k of ['region', l.filter.name])
                if (p.get(k))
                    parts.push(p.get(k).replace(/[^A-Za-z0-9_-]/g, ''));
            parts.push(new Date().toISOString().slice(0, 10));
            const url = URL.createObjectURL(blob);
            const a = el('a', {href: url, download: parts.join('-') + '.csv', hidden: true});
            document.body.appendChild(a);
            a.click();
            a.remove();
            setTimeout(() => URL.revokeObjectURL(url), 60000);
            status.textContent = `CSV saved (${num.format(blob.size)} bytes).`;
        } catch (e) {
            status.textContent = '';
            failed(e);
        }
    }

    /* ---- start ---- */

    function start() {
        buildLists();
        $('login-form').addEventListener('submit', signIn);
        $('signout').addEventListener('click', signOut);
        $('refresh').addEventListener('click', () => {
            refresh();
            for (const l of LISTS)
                loadList(l.type);
        });
        state.token = storedToken();
        if (state.token)
            showDashboard();
        else
            showLogin('');
    }

    start();
})();
