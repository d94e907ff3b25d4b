// `mambabyte chat`: the Ink REPL. The conversation lives in the model's recurrent state: each turn feeds only the
// new text (what you type, verbatim — MambaByte is a plain byte LM, there is no hidden chat template) and the model
// continues it. Enter on an empty line lets the model go on writing.
//
// Screen, top to bottom: the transcript (<Static>: printed once, never redrawn), the live turn (the unfinished
// line and drafted bytes awaiting verification), the status line, lines queued for after the turn, the prompt.
// Events from the engine are batched into at most ~30 updates a second (runner.ts), so the redrawn part is a few
// rows however fast bytes arrive.
//
// A width change is the one time the transcript is printed again (resize.ts says why): a new key remounts <Static>,
// which then emits every item at the new width, below a cleared screen.
import { Box, render, useApp, useInput, useStdout, type Key } from 'ink';
import { useEffect, useRef, useState } from 'react';
import { settingsOf, type GenerationOptions, type GenerationSettings } from '../app/options.js';
import type { GenerationStats } from '../engine/events.js';
import { UsageError, UserError } from '../errors.js';
import { parseLine, type Command } from './commands.js';
import { formatBytes } from './format.js';
import { item, note, type Item, type SavedItem } from './items.js';
import { editLine, emptyEditor, type EditorState } from './line-editor.js';
import { LiveTurn } from './live-turn.js';
import { Prompt } from './prompt.js';
import { useWidthRedraw } from './resize.js';
import { runTurn } from './runner.js';
import { mismatch, readSave, writeSave } from './save.js';
import { savedSettings } from './save-schema.js';
import type { ChatSession } from './session.js';
import { StatusLine, type StatusProps } from './status-line.js';
import { applyColorEnv } from './theme.js';
import { addTotals, helpLines, noTotals, statsLines } from './totals.js';
import { Transcript } from './transcript.js';
import type { TurnView } from './turn.js';

type Phase = StatusProps['phase'];

export interface ChatAppProps {
	session: ChatSession;
	settings: GenerationSettings;
	/** Batching interval for live updates in ms (0 = every event, for tests). */
	intervalMs?: number;
	/** Line length after which a line without newlines is wrapped into the transcript (default: 3 rows' worth). */
	wrapAt?: number;
	/** Quiet time after the last resize event before the screen is redrawn (a dragged window sends many; 0 = at once). */
	resizeDelayMs?: number;
	/** Called when the user leaves (before Ink unmounts). */
	onExit?: () => void;
}

export function ChatApp({ session, settings: initial, intervalMs = 33, wrapAt, resizeDelayMs = 50, onExit }: ChatAppProps) {
	const app = useApp();
	const { stdout } = useStdout();
	// Leaving: one last frame without the prompt (the status line stays as a summary), then unmount.
	const [leaving, setLeaving] = useState(false);
	const leavingRef = useRef(false);
	useEffect(() => {
		if (leaving) app.exit();
	}, [leaving]);
	const exit = () => {
		onExit?.();
		leavingRef.current = true;
		setLeaving(true);
	};
	const [items, setItems] = useState<Item[]>(() => [
		note(`mambabyte chat · ${session.model.name} on ${session.backend}${session.drafter ? ` · drafter ${session.drafter}` : ''} · /help for commands`, 'dim'),
	]);
	const [editor, setEditorState] = useState<EditorState>(emptyEditor());
	const editorRef = useRef(editor);
	const [live, setLive] = useState<TurnView | null>(null);
	const [phase, setPhase] = useState<Phase>('ready');
	const [settings, setSettingsState] = useState(initial);
	const settingsRef = useRef(settings);
	const [stats, setStats] = useState<GenerationStats | null>(null);
	const [generated, setGenerated] = useState(0);
	const [contextBytes, setContextBytes] = useState(session.contextBytes);
	const busy = useRef<AbortController | null>(null); // set while a turn (or a load) runs
	const totals = useRef(noTotals());
	const itemsRef = useRef(items);
	const [queued, setQueuedState] = useState<string[]>([]); // lines sent while busy, sent in order after it
	const queuedRef = useRef(queued);
	const layout = useWidthRedraw(stdout, resizeDelayMs); // a new value per width change: the transcript is printed again

	const setEditor = (s: EditorState) => {
		editorRef.current = s;
		setEditorState(s);
	};
	const setSettings = (s: GenerationSettings) => {
		settingsRef.current = s;
		setSettingsState(s);
	};
	const print = (...more: Item[]) => {
		itemsRef.current = [...itemsRef.current, ...more];
		setItems(itemsRef.current);
	};
	const setQueued = (q: string[]) => {
		queuedRef.current = q;
		setQueuedState(q);
	};
	/** When a turn or command ends: send the first line queued during it. */
	const sendQueued = () => {
		const [next, ...rest] = queuedRef.current;
		if (next === undefined) return;
		setQueued(rest);
		submit(next);
	};
	const info = (...lines: string[]) => print(...lines.map((l) => note(l)));
	const fail = (message: string) => print(note(message, 'error'));

	async function turn(text: string) {
		const ctl = new AbortController();
		busy.current = ctl;
		setPhase('reading');
		setStats(null);
		setGenerated(0);
		if (text !== '') print(item({ kind: 'user' as const, text }));
		try {
			const res = await runTurn(session, new TextEncoder().encode(text), settingsRef.current, {
				signal: ctl.signal,
				intervalMs,
				// the live line stays at most ~3 rows of this terminal (as wide as it is now): longer text moves up into
				// the transcript
				wrapAt: () => wrapAt ?? Math.max(60, 3 * ((stdout.columns || 80) - 2)),
				onUpdate: ({ lines, view }) => {
					if (lines.length > 0) print(...lines.map((spans) => item({ kind: 'model' as const, spans })));
					setLive(view);
					setContextBytes(session.contextBytes);
					if (view) {
						setPhase('generating');
						setGenerated(view.generated);
						if (view.stats) setStats(view.stats);
					}
				},
			});
			totals.current = addTotals(totals.current, res.stats);
			setStats(res.stats);
			setGenerated(res.generated);
			setPhase(res.reason === 'aborted' ? 'stopped' : 'ready');
		} catch (e) {
			fail(`error: ${e instanceof Error ? e.message : String(e)}`);
			setPhase('ready');
		} finally {
			busy.current = null;
			setLive(null);
			setContextBytes(session.contextBytes);
			if (!leavingRef.current) sendQueued();
		}
	}

	async function command(c: Exclude<Command, { kind: 'text' }>) {
		const s = settingsRef.current;
		switch (c.kind) {
			case 'help':
				return info(...helpLines());
			case 'reset':
				session.reset();
				totals.current = noTotals();
				setContextBytes(session.contextBytes);
				setStats(null);
				setGenerated(0);
				return print(note('— conversation reset: state zeroed, context 0 B —', 'dim'));
			case 'temp':
				setSettings({ ...s, temperature: c.value });
				return info(`temperature ${c.value}${c.value === 0 ? ' (greedy)' : ''}`);
			case 'topp':
				setSettings({ ...s, topP: c.value });
				return info(`top-p ${c.value}${c.value === 1 ? ' (off)' : ''}`);
			case 'draft':
				if (c.on && !session.drafter) return fail('no drafter loaded: start chat with --draft DIR');
				setSettings({ ...s, draft: c.on });
				return info(`speculative decoding ${c.on ? 'on' : 'off'}`);
			case 'accept':
				setSettings({ ...s, accept: c.accept });
				return info(`accept ${c.accept.kind === 'exact' ? 'exact (same output as plain decoding)' : `top:${c.accept.k}`}`);
			case 'stats':
				return info(...statsLines(totals.current, session, contextBytes));
			case 'exit':
				return exit();
			case 'error':
				return fail(c.message);
			case 'save': {
				const transcript = itemsRef.current.flatMap((i): SavedItem[] =>
					i.kind === 'user' ? [{ kind: 'user', text: i.text }] : i.kind === 'model' ? [{ kind: 'model', spans: i.spans }] : []);
				const n = writeSave(c.file, { model: session.model, contextBytes: session.contextBytes, settings: savedSettings(s), transcript, state: await session.exportState() });
				return info(`saved ${c.file} (${formatBytes(n)}: state and ${transcript.length} transcript lines)`);
			}
			case 'load': {
				// Validated completely (save-schema.ts) and the state restored all-or-nothing before anything is shown.
				const saved = readSave(c.file, 2 * session.stateBytes + (1 << 24));
				const why = mismatch(saved.model, session.model);
				if (why) return fail(`${c.file}: ${why}`);
				await session.importState(saved.state);
				setSettings({ ...s, ...saved.settings, draft: saved.settings.draft && session.drafter !== null });
				setContextBytes(session.contextBytes);
				totals.current = noTotals();
				setStats(null);
				print(
					note(`— loaded ${c.file}: context ${formatBytes(session.contextBytes)}, ${saved.transcript.length} transcript lines —`, 'dim'),
					...saved.transcript.map((t) => (t.kind === 'user' ? item({ kind: 'user' as const, text: t.text }) : item({ kind: 'model' as const, spans: t.spans }))),
				);
				return;
			}
		}
	}

	function submit(line: string) {
		const c = parseLine(line);
		if (c.kind === 'text') {
			void turn(c.text);
			return;
		}
		const ctl = new AbortController();
		busy.current = ctl;
		command(c)
			.catch((e: unknown) => fail(e instanceof UserError ? e.message : `error: ${e instanceof Error ? e.message : String(e)}`))
			.finally(() => {
				if (busy.current === ctl) busy.current = null;
				if (!leavingRef.current) sendQueued();
			});
	}

	function onKey(input: string, key: Key) {
		if (key.ctrl && input === 'c') {
			if (busy.current) busy.current.abort(); // stop the generation; the state keeps what was committed
			else if (editorRef.current.value !== '') setEditor({ ...editorRef.current, value: '', cursor: 0 });
			else exit();
			return;
		}
		if (key.ctrl && input === 'd') {
			if (!busy.current && editorRef.current.value === '') exit();
			return;
		}
		// Text and Enter in one chunk (fast typing, or a terminal multiplexer): type the text, then press Enter.
		if (input.length > 1 && /[^\r]\r$/.test(input) && !/[\r\n]/.test(input.slice(0, -1))) {
			onKey(input.slice(0, -1), { ...key, return: false });
			onKey('', { ...key, return: true });
			return;
		}
		const r = editLine(editorRef.current, input, key);
		if (r.submit !== undefined && busy.current) {
			// Sent while the model writes: queued, and sent when the turn ends (an empty line has nothing to queue).
			if (r.submit === '') return;
			setEditor(r.state);
			setQueued([...queuedRef.current, r.submit]);
			return;
		}
		setEditor(r.state);
		if (r.submit !== undefined) submit(r.submit);
	}
	useInput(onKey);

	return (
		<>
			<Transcript key={layout} items={items} />
			<Box flexDirection="column">
				{live ? <LiveTurn view={live} /> : null}
				<StatusLine
					phase={phase}
					stats={stats}
					generated={generated}
					backend={session.backend}
					model={session.model.name}
					drafter={session.drafter}
					draftOn={settings.draft}
					accept={settings.accept}
					contextBytes={contextBytes}
					stateBytes={session.stateBytes}
					temperature={settings.temperature}
					topP={settings.topP}
				/>
				{leaving ? null : <Prompt value={editor.value} cursor={editor.cursor} busy={phase === 'reading' || phase === 'generating'} queued={queued} />}
			</Box>
		</>
	);
}

/**
 * The chat's starting settings: the flags' (every knob applies per turn). The drafter starts on whenever one is
 * loaded: the engine drafts only as much as measurably pays on this backend and model pair (engine/adaptive.ts).
 */
export function initialSettings(opts: GenerationOptions, drafter: string | null): GenerationSettings {
	return { ...settingsOf(opts), draft: opts.draft && opts.drafter !== null && drafter !== null };
}

export async function runChat(opts: GenerationOptions): Promise<void> {
	if (!process.stdin.isTTY || !process.stdout.isTTY) {
		throw new UsageError('chat needs a terminal on stdin and stdout (to pipe text, use `mambabyte complete`)');
	}
	applyColorEnv();
	const { openChatSession } = await import('./engine-session.js');
	const session = await openChatSession(opts);
	const app = render(<ChatApp session={session} settings={initialSettings(opts, session.drafter)} />, {
		exitOnCtrlC: false, // Ctrl-C stops a generation; only at an empty prompt does it exit
		maxFps: 30,
		// Ink 6.8's incremental mode redraws the live rows below themselves once <Static> output is written (seen in
		// tmux), so the whole (small) live part is redrawn instead, inside synchronized-update marks (DEC 2026) that
		// terminals supporting them use to show each frame whole.
		incrementalRendering: false,
		patchConsole: true,
	});
	try {
		await app.waitUntilExit();
	} finally {
		app.cleanup();
	}
}
