// Everything the settings window shows, loaded once and kept current by the shell's events
// (server status, settings, model pool, audit feed) — the window never polls.
import { commands, events, type AppSettings, type DesktopInfo, type ModelLoading, type ModelPool, type ServerStatus } from "./bindings";
import { AuditLog } from "./audit.svelte";
import { call, errorText } from "./api";

export class AppState {
  status = $state<ServerStatus | null>(null);
  settings = $state<AppSettings | null>(null);
  pool = $state<ModelPool | null>(null);
  /** The OS the app runs on (what the Dock icon and the tiny model apply to). */
  desktop = $state<DesktopInfo | null>(null);
  loadError = $state<string | null>(null);
  /** The latest loading state per model id (from the engine, while models load). */
  loading = $state<Record<string, ModelLoading>>({});
  audit = new AuditLog();

  /** Fetches the pool again (request counts and idle times change without a pool event). */
  async refreshPool(): Promise<void> {
    try {
      this.pool = await call(commands.modelPool());
    } catch (e) {
      this.loadError = errorText(e);
    }
  }

  /** Loads the current state and subscribes to changes; returns the unsubscribe function. */
  async start(): Promise<() => void> {
    const unlisten = await Promise.all([
      events.serverStatusChanged.listen((e) => (this.status = e.payload)),
      events.settingsChanged.listen((e) => (this.settings = e.payload)),
      events.modelPoolChanged.listen((e) => (this.pool = e.payload)),
      events.modelLoading.listen((e) => (this.loading[e.payload.model] = e.payload)),
      events.auditEntryAppended.listen((e) => this.audit.receive(e.payload)),
      events.statsChanged.listen((e) => this.audit.changed(e.payload.lagged)),
      events.exportProgress.listen((e) => this.audit.exportProgress(e.payload.path, e.payload.rows)),
    ]);
    this.audit.live = true;
    try {
      const [status, settings, pool, desktop] = await Promise.all([
        call(commands.serverStatus()),
        call(commands.getSettings()),
        call(commands.modelPool()),
        call(commands.desktopInfo()),
      ]);
      this.desktop = desktop;
      this.status = status;
      this.settings = settings;
      this.pool = pool;
    } catch (e) {
      this.loadError = errorText(e);
    }
    await this.audit.reload();
    return () => {
      this.audit.live = false;
      for (const f of unlisten) f();
    };
  }
}
