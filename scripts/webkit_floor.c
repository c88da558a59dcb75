/* The memory floor of any Tauri app on Linux (scripts/measure-app): a program that does nothing
 * but link what Tauri's Linux runtime links (WebKitGTK, GTK 3, Ayatana AppIndicator), open the X
 * display and show a tray icon with a one-item menu. Prints its VmRSS and RssAnon in KiB. */
#include <gtk/gtk.h>
#include <libayatana-appindicator/app-indicator.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  gtk_init(&argc, &argv);
  AppIndicator *tray = app_indicator_new("floor", "dialog-information", APP_INDICATOR_CATEGORY_APPLICATION_STATUS);
  GtkWidget *menu = gtk_menu_new();
  gtk_menu_shell_append(GTK_MENU_SHELL(menu), gtk_menu_item_new_with_label("Quit"));
  gtk_widget_show_all(menu);
  app_indicator_set_menu(tray, GTK_MENU(menu));
  app_indicator_set_status(tray, APP_INDICATOR_STATUS_ACTIVE);
  for (int i = 0; i < 50; i++) gtk_main_iteration_do(FALSE);
  /* WebKit is linked (scripts/measure-app links with --no-as-needed, as a Tauri binary needs
   * it) but, as in a tray-only app, no web view exists. */
  FILE *status = fopen("/proc/self/status", "r");
  char line[256];
  while (fgets(line, sizeof line, status))
    if (!strncmp(line, "VmRSS:", 6) || !strncmp(line, "RssAnon:", 8)) fputs(line, stdout);
  fclose(status);
  return 0;
}
