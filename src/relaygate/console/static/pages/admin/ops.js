// The admin pages about operating the gateway (channels, models and prices, system status):
// path -> { page, title }. Each page module exports render(ctx, root).
import * as channels from "./channels.js";
import * as prices from "./prices.js";
import * as status from "./status.js";

export const PAGES = {
  "/admin/channels": { page: channels, title: "nav.adminChannels" },
  "/admin/prices": { page: prices, title: "nav.adminPrices" },
  "/admin/status": { page: status, title: "nav.adminStatus" },
};
