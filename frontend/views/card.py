from frontend import pages

pages.card_page(pages.Context.current())
