from frontend import pages

pages.about_page(pages.Context.current())
