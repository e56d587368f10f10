// The admin page for the gateway's runtime settings: path -> { page, title }.
export const PAGES = {};
