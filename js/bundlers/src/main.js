// The app as a bundler sees it: the package imported by name, the way pkg/README.md does.
import { SyncClient } from "eventsync";
import { run } from "./app.js";

run(SyncClient);
