// The admin page for the gateway's runtime settings: path -> { page, title }.
import * as settings from "./settings.js";

export const PAGES = {
  "/admin/settings": { page: settings, title: "nav.adminSettings" },
};
