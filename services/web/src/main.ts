// Entry point of the web client bundle (services/web/static/app.js).
import { App } from "./app";

new App().start();
