"""The crowdsourcing web server: participant pages, JSON API and admin (Flask); see server.app."""
